"""`feedbot source add|list|status|remove`, in process (the KiotViet case against the fake
KiotViet API: the command fetches a token and registers the webhook itself)."""
from __future__ import annotations

import base64

from bot.cli.main import build_parser
from bot.cli import sources as sources_cli
from testkit.kiotviet_api import FakeKiotViet
from tests.conftest import make_config


async def run(config, capsys, *argv: str) -> tuple[int, str, str]:
    args = build_parser().parse_args(["source", *argv])
    code = await sources_cli.run(config, args)
    out = capsys.readouterr()
    return code, out.out, out.err


async def test_add_prints_the_url_and_both_click_paths_then_list_and_status(tmp_path, capsys):
    config = make_config(tmp_path, http={"public_url": "https://bot.shop.vn"})
    code, out, _ = await run(config, capsys, "add", "haravan", "--name", "hrv", "--secret", "auth-string-123")
    assert code == 0
    assert "https://bot.shop.vn/webhooks/orders/hrv" in out
    assert "Cấu hình" in out and "Settings → Notifications" in out  # Vietnamese and English paths
    code, out, _ = await run(config, capsys, "list")
    assert code == 0 and "hrv\tharavan\tdelivered on delivered" in out
    code, out, _ = await run(config, capsys, "status", "hrv")
    assert code == 0 and "deliveries: none yet" in out
    code, _, err = await run(config, capsys, "add", "haravan", "--name", "hrv", "--secret", "auth-string-123")
    assert code == 2 and "exists already" in err


async def test_bad_input_exits_2_naming_it(tmp_path, capsys):
    config = make_config(tmp_path)
    code, _, err = await run(config, capsys, "add", "shopify")
    assert code == 2 and "--secret" in err
    code, _, err = await run(config, capsys, "add", "shopify", "--secret", "k" * 20, "--name", "Bad Name")
    assert code == 2 and "name" in err
    code, _, err = await run(config, capsys, "add", "kiotviet", "--retailer", "shopan")
    assert code == 2 and "--client-id" in err
    code, _, err = await run(config, capsys, "status", "nope")
    assert code == 2


async def test_woocommerce_gets_a_generated_secret_and_remove_works(tmp_path, capsys):
    config = make_config(tmp_path)
    code, out, _ = await run(config, capsys, "add", "woocommerce")
    assert code == 0 and "secret: " in out and "WooCommerce → Settings → Advanced → Webhooks" in out
    code, out, _ = await run(config, capsys, "remove", "woocommerce")
    assert code == 0
    code, out, _ = await run(config, capsys, "list")
    assert "no order sources" in out


async def test_kiotviet_is_registered_through_its_api(tmp_path, capsys):
    async with FakeKiotViet() as kv:
        config = make_config(tmp_path, http={"public_url": "https://bot.shop.vn"},
                             orders={"kiotviet_token_url": kv.token_url, "kiotviet_api_url": kv.api_url})
        code, out, err = await run(config, capsys, "add", "kiotviet", "--name", "kv", "--retailer", "shopan",
                                   "--client-id", kv.client_id, "--client-secret", kv.client_secret)
        assert code == 0, err
        assert kv.token_requests == 1
        [hook] = kv.webhooks
        assert hook["Type"] == "invoice.update" and hook["Url"] == "https://bot.shop.vn/webhooks/orders/kv"
        secret = out.split("secret: ")[1].split()[0]
        assert base64.b64decode(hook["Secret"]).decode() == secret  # sent base64-encoded, as KiotViet documents
        # Wrong credentials: nothing is added.
        code, _, err = await run(config, capsys, "add", "kiotviet", "--name", "kv2", "--retailer", "shopan",
                                 "--client-id", "wrong", "--client-secret", "wrong-secret")
        assert code == 1 and "client id" in err
        code, out, _ = await run(config, capsys, "list")
        assert "kv2" not in out


def test_help_of_the_new_commands(capsys):
    import pytest

    for argv in (["source", "--help"], ["source", "add", "--help"], ["source", "status", "--help"], ["import", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            build_parser().parse_args(argv)
        assert exit_.value.code == 0
        assert capsys.readouterr().out.startswith("usage: feedbot")
