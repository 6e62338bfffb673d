"""`feedbot webhooks ...` as a shop owner runs it: add (with bad input refused, exit 2), list,
test against a local receiver, rotate-secret, redeliver, remove."""
from __future__ import annotations

import asyncio

from standardwebhooks import Webhook

from testkit.webhook_receiver import Answer, WebhookReceiver
from bot.cli.main import main
from tests.cli.test_main import feedbot


def cli(tmp_path, capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in this process, on a database in tmp_path; (exit status, stdout, stderr)."""
    config = tmp_path / "config.toml"
    if not config.exists():
        config.write_text(f'[database]\npath = "{tmp_path / "feedbot.db"}"\n')
    capsys.readouterr()
    try:
        code = main([*args, "--config", str(config)])
    except SystemExit as exc:  # argparse refusing an argument
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def run(*args: str, cwd, capsys) -> tuple[int, str, str]:
    """The same on a thread (the CLI runs its own event loop; the receiver lives on this one)."""
    return await asyncio.to_thread(cli, cwd, capsys, *args)


def test_bad_input_is_refused_with_what_is_wrong(tmp_path, capsys):
    code, _, err = cli(tmp_path, capsys, "webhooks", "add", "ftp://example.vn/x", "--events", "survey.answered")
    assert code == 2 and "http:// or https://" in err
    code, _, err = cli(tmp_path, capsys, "webhooks", "add", "https://example.vn/x", "--events", "survey.answerd")
    assert code == 2 and "unknown event type 'survey.answerd'" in err
    code, _, err = cli(tmp_path, capsys, "webhooks", "remove", "seven")
    assert code == 2 and "expected an endpoint id" in err
    code, _, err = cli(tmp_path, capsys, "webhooks", "remove", "7")
    assert code == 1 and "no webhook endpoint 7" in err
    code, _, err = cli(tmp_path, capsys, "webhooks", "redeliver", "x")
    assert code == 2 and "msg_" in err
    result = feedbot("webhooks", "--help", cwd=tmp_path)  # the installed entry point too
    assert result.returncode == 0 and "Standard Webhooks" in result.stdout


async def test_add_list_test_rotate_and_remove(tmp_path, capsys):
    async with WebhookReceiver() as receiver:
        code, out, err = await run("webhooks", "add", receiver.url, "--events", "*", "--description", "CRM", cwd=tmp_path, capsys=capsys)
        assert code == 0 and "endpoint 1:" in out and "http:// sends" in err  # warned: not https
        secret = out.split("secret: ")[1].strip()
        assert secret.startswith("whsec_")
        code, out, _ = await run("webhooks", "list", cwd=tmp_path, capsys=capsys)
        assert code == 0 and receiver.url in out and "survey.answered,survey.commented" in out and secret not in out

        code, out, _ = await run("webhooks", "test", "1", cwd=tmp_path, capsys=capsys)
        assert code == 0 and "HTTP 200" in out
        (got,) = receiver.received
        event = Webhook(secret).verify(got.body, got.headers)
        assert event["type"] == "webhook.test" and event["data"]["endpoint_id"] == 1

        receiver.answers = [Answer(503)]
        code, out, _ = await run("webhooks", "test", "1", cwd=tmp_path, capsys=capsys)
        assert code == 1 and "HTTP 503" in out
        code, out, _ = await run("webhooks", "deliveries", "--status", "pending", cwd=tmp_path, capsys=capsys)
        assert code == 0 and "webhook.test" in out and "HTTP 503" in out
        delivery_id = out.split()[0]
        code, out, _ = await run("webhooks", "redeliver", delivery_id, cwd=tmp_path, capsys=capsys)
        assert code == 0 and f"queued again: {delivery_id}" in out

        code, out, _ = await run("webhooks", "rotate-secret", "1", cwd=tmp_path, capsys=capsys)
        new = out.split("secret: ")[1].split()[0]
        assert code == 0 and new != secret and "previous secret also signs until" in out
        code, out, _ = await run("webhooks", "secret", "1", cwd=tmp_path, capsys=capsys)
        assert out.strip() == new
        code, out, _ = await run("webhooks", "test", "1", cwd=tmp_path, capsys=capsys)
        last = receiver.received[-1]
        assert len(last.headers["webhook-signature"].split(" ")) == 2
        Webhook(secret).verify(last.body, last.headers)  # a receiver on either secret accepts it
        Webhook(new).verify(last.body, last.headers)

        code, _, _ = await run("webhooks", "remove", "1", cwd=tmp_path, capsys=capsys)
        assert code == 0
        code, out, _ = await run("webhooks", "list", cwd=tmp_path, capsys=capsys)
        assert "no webhook endpoints" in out
