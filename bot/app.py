"""Wires everything together: database, channels, engine, sender, scheduler, HTTP server."""
from __future__ import annotations

import asyncio
import errno
import logging
import secrets
import sqlite3
import sys
from datetime import datetime, timedelta, timezone
from dataclasses import replace
from typing import Any

from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from telegram.error import InvalidToken

from bot import cluster
from bot.http import agent_page, dashboard, dashboard_programs
from bot.channels.base import Channel
from bot.channels.telegram.channel import TelegramChannel
from bot.channels.zalo.channel import DbLastMessage, DbTokenStore, ZaloChannel, ZnsChannel
from bot.channels.web.channel import WebChannel
from bot.clock import Clock, SystemClock
from bot.config import API_BASE_URL_EXAMPLE, AgentsSection, Config
from bot.http.agent_orders import AgentOrders
from bot.http.auth import TelegramSignIn, WebAuth
from bot.services.accounts import Accounts
from bot.services import rollups as rollup_service
from bot.http.connections import ConnectionGuard, ConnectionLimits, GuardedSite
from bot.services.digest import service_for
from bot.services.feedback_digest import FeedbackDigestService
from bot.engine import Engine
from bot.http.api import HttpApi
from bot.channels.telegram.webhook import WEBHOOK_PATH as TELEGRAM_WEBHOOK_PATH, TelegramWebhook
from bot.services.backups import Backups, BackupSettings
from bot.services.data_rights import Privacy
from bot.outbox.rate_limit import ClusterRateLimiter
from bot.outbox.sender import Sender
from bot.webhooks.worker import WebhookSettings, WebhookWorker
from bot.services.survey_routes import Owners, SurveyRoutes
from bot.services.surveys import SurveyDispatcher
from bot.services.program_admin import ProgramAdmin
from bot.services.programs import ProgramService
from bot.outbox.effects import Effects
from bot.services.desk import AgentDesk, CustomerDesk, DeskConfig, DeskGroup
from bot.services.sla import SlaWatchdog
from bot.services.threads import TicketThreads
from bot.channels.zalo.webhook import ZaloWebhook
from bot.services import demo
from bot.services.orders import OrderIntake
from bot.outbox.effects import Target
from bot.sources.registry import SourceRegistry
from bot.sources.webhook import OrderWebhooks
from flows.texts import text
from bot.channels.web import server as web_chat
from flows import survey_routes as routing
from flows.routing import NO_ROUTES
from flows.schedule import SurveyPolicy
from storage import settings
from storage.backup import BackupError, RunLock
from storage.db import MigrationError, dialect

log = logging.getLogger(__name__)

HOUSEKEEPING_INTERVAL_S = 300  # expiry and reminders
TOKEN_CHECK_S = 1800  # how often the Zalo token pair's age is checked
SENDER_STOP_TIMEOUT_S = 5.0  # for the sender's pass under way to end at stop
# Every kind of channel, enabled or not (what the agents' page needs to know of old tickets' chats).
CHANNEL_TYPES: tuple[type[Channel], ...] = (TelegramChannel, ZaloChannel, WebChannel)
SCHEDULER_GRACE_S = 60.0  # /healthz: a periodic job this late (or its interval, if longer) means the scheduler is stuck


class StartupError(RuntimeError):
    pass


def _telegram_start_error(exc: Exception, api_base_url: str) -> str:
    """What getMe's failure means for the one who set the config: a wrong address, a refused
    token, or no answer at all (PTB raises InvalidToken for both 401 and 404)."""
    answer = str(exc.__cause__ or exc)  # PTB's getMe re-raises "token rejected" from the server's answer
    if isinstance(exc, InvalidToken) and ("Not Found" in answer or "(404)" in answer):
        return (f"telegram.api_base_url: the server at {api_base_url} answered 404 Not Found to getMe: "
                f"is it the Bot API's base address, without /bot (like {API_BASE_URL_EXAMPLE})?")
    if isinstance(exc, InvalidToken):
        return "telegram.token: Telegram did not accept the bot token (401 Unauthorized); check it with @BotFather"
    return (f"telegram.api_base_url: could not reach the Bot API at {api_base_url} ({type(exc).__name__}); "
            f"check the address and the network")


def _display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


class FeedbotApp:
    def __init__(self, config: Config, *, clock: Clock | None = None, sender_clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.sender_clock = sender_clock
        self.db = config.database.open()
        self.telegram: TelegramChannel | None = None
        self.zalo: ZaloChannel | None = None
        self.zns: ZnsChannel | None = None
        self.routes: SurveyRoutes | None = None
        self.zalo_webhook: ZaloWebhook | None = None
        self.telegram_webhook: TelegramWebhook | None = None
        self.web: WebChannel | None = None
        self.channels: dict[str, Channel] = {}
        self.api_token = ""
        self.bot_username: str | None = None
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self.connection_limits = ConnectionLimits.from_config(config)
        self.guard: ConnectionGuard | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.webhooks: WebhookWorker | None = None
        self._sender_task: asyncio.Task[None] | None = None
        self._polling_task: asyncio.Task[None] | None = None
        self.scheduler: AsyncIOScheduler | None = None
        self.order_webhooks: OrderWebhooks | None = None
        # Built by start(); None until then (stop() after a failed start undoes what was built).
        self.sender: Sender | None = None
        self.order_sources: SourceRegistry | None = None
        self.desk: DeskGroup | None = None
        self.setup_link: str | None = None
        self.backups = Backups(BackupSettings.from_config(config), self.clock, alert=self._backup_failed)
        self.run_lock: RunLock | None = None
        self.cluster_settings = cluster.Settings.from_config(config)
        self.cluster: cluster.Cluster | cluster.Solo = cluster.Solo(self.cluster_settings.instance)

    async def start(self, *, scheduler: bool = True) -> None:
        cfg = self.config
        await self._open_database()
        async with self.db.transaction() as tx:
            # No token configured: generate one once and keep it (`feedbot api-token` shows it).
            self.api_token = cfg.http.api_token or await settings.get_or_create(
                tx, "api_token", lambda: secrets.token_urlsafe(24)
            )
            webhook_secret = cfg.telegram.webhook_secret or await settings.get_or_create(
                tx, "telegram_webhook_secret", lambda: secrets.token_urlsafe(32)
            )
            web_secrets = await web_chat.load_secrets(tx, cfg)
        if await rollup_service.ensure_current(self.db, cfg.rollup_rule()):
            log.info("CSAT rollups built for rule %s", rollup_service.rule_text(cfg.rollup_rule()))
        await rollup_service.fold_old_comments(self.db)
        self.bot_username = cfg.telegram.bot_username.lstrip("@") or None
        if cfg.telegram_enabled:
            await self._start_telegram()
        if cfg.zalo_enabled:
            await self._start_zalo()
        if cfg.web.enabled:
            self.web = WebChannel(self.db, self.clock)
            self.channels["web"] = self.web

        policy = cfg.survey_policy()
        shop = cfg.shop.name
        agents = cfg.agents
        await self._build_services(policy, shop, agents)
        # Reports work without Telegram (CLI, HTTP); sending needs the channel and owners.
        self.digests = service_for(cfg, self.db, self.clock, owners=self.telegram is not None, wake_sender=self.sender.wake)
        self.feedback_digests = feedback_digest_for(cfg, self.db, self.clock, telegram=self.telegram is not None,
                                                    wake_sender=self.sender.wake)
        replayed = await self.engine.replay_unprocessed()
        if replayed:
            log.info("replayed %d update(s) recorded before the last stop", replayed)
        replayed = await self.orders.replay(await self.order_sources.load())
        if replayed:
            log.info("handled %d order deliveries recorded before the last stop", replayed)

        await self._serve_http(policy, shop, webhook_secret, web_secrets)

        webhook_settings = WebhookSettings.from_config(cfg)
        if webhook_settings.enabled:
            # Delivery times are real time, like the sender's (sender_clock in tests).
            self.webhooks = WebhookWorker(self.db, self.sender_clock or SystemClock(), webhook_settings)
            self._tasks.append(asyncio.create_task(self.webhooks.run(), name="webhooks"))
        if self.telegram is not None:
            if cfg.telegram_webhook:
                await self.telegram.use_webhook(cfg.http.public_url + TELEGRAM_WEBHOOK_PATH, webhook_secret)
            else:
                await self.telegram.use_polling()
        if dialect(self.db) == "postgresql":
            # Several instances may share this database: the leader sends, polls and runs
            # the periodic jobs (bot/cluster.py); this one may be it now or later.
            self.cluster = cluster.Cluster(
                self.db, self.cluster_settings.instance, self.cluster_settings.lease,
                lead=self._lead, follow=self._follow, while_leading=self._recover_expired,
                on_outbox=self.sender.wake,
            )
            self.sender.wake_others = self.cluster.wake_leader
            self.sender.may_send = self.cluster.holds
            if self.web is not None:
                await self.web.share(self.db, self.cluster_settings.instance)
            await self.cluster.start()
        else:
            await self._lead()
        if scheduler:
            self._start_scheduler()

    async def _lead(self) -> None:
        """This instance leads (always, on SQLite): it sends, polls Telegram, runs the jobs."""
        if self.cluster.enabled:
            await self._recover_expired()  # what a dead leader was sending
            if isinstance(self.sender.limiter, ClusterRateLimiter):
                paused = await self.sender.limiter.restore()  # a 429's pause the last leader got
                if paused:
                    log.warning("cluster: taking over pauses after 429s: %s", paused)
            if self.zalo is not None:
                await self.zalo.reload_tokens()  # the last leader may have rotated them
        self.sender.resume()
        self._sender_task = asyncio.create_task(self.sender.run(), name="sender")
        if self.telegram is not None and not self.config.telegram_webhook:
            receive = lambda raw: self.engine.receive("telegram", raw)  # noqa: E731
            self._polling_task = asyncio.create_task(self.telegram.poll(receive), name="telegram-polling")
        if self.scheduler is not None:  # at once: what came due while nobody led goes now
            for job in self.scheduler.get_jobs():
                job.modify(next_run_time=datetime.now(timezone.utc))

    async def _follow(self) -> None:
        """No longer the leader: stop sending (in-flight sends finish and are recorded) and polling."""
        if self._polling_task is not None:
            self._polling_task.cancel()
            await asyncio.gather(self._polling_task, return_exceptions=True)
            self._polling_task = None
        if self._sender_task is not None:
            # Asked, not cancelled: a cancel between claiming a row and starting its send
            # would leave the row 'sending' (then 'unknown' at the next start: never sent).
            self.sender.finish_soon()
            _, late = await asyncio.wait({self._sender_task}, timeout=SENDER_STOP_TIMEOUT_S)
            self._tasks.extend(late)  # stuck past the deadline: cancelled with the rest
            self._sender_task = None
            await self.sender.stop()
            if isinstance(self.sender.limiter, ClusterRateLimiter):
                await self.sender.limiter.hand_over()  # the next leader keeps to our last window

    async def _recover_expired(self) -> None:
        await self.sender.recover(expired_only=True)

    def _leader_only(self, job: Any) -> Any:
        """A periodic job that runs on the leader only: once per period for the whole cluster."""
        async def run() -> None:
            if self.cluster.holds():
                await job()

        run.__name__ = getattr(job, "__name__", "job")
        return run

    async def _open_database(self) -> None:
        """Open, migrate and write once: a database the bot cannot write to stops start-up
        with a message naming database.path (not a bot that runs and fails every write)."""
        path = self.config.database.path
        key, path = ("database.url", "on PostgreSQL") if self.config.database.url else ("database.path", repr(path))
        self._hold_run_lock()
        before = None
        try:
            await self.db.open(migrate=False)
            before = await self.backups.before_migrating(self.db)
            await self.db.migrate()
            await self.db.heartbeat(datetime.now(timezone.utc).isoformat())
        except BackupError as exc:
            await self.db.close()
            raise StartupError(f"new migrations to apply, but the backup before them failed: {exc}; nothing was "
                               "changed. Fix it (or set backup.before_migrations = false) and start again") from None
        except MigrationError as exc:  # e.g. migrated by a newer feedbot, or one that fails
            await self.db.close()
            back = ""
            if before is not None:
                back = (f". The backup taken just before is {before.path}: to go back, run the feedbot version you "
                        f"had before (the database is unchanged), or `feedbot db restore {before.path}`")
            raise StartupError(f"{exc}{back}") from None
        except (sqlite3.Error, OSError) as exc:
            await self.db.close()
            raise StartupError(f"{key}: cannot open or write the database {path} "
                               f"({type(exc).__name__}: {exc}); check the path, its permissions and free disk space") from None

    def _hold_run_lock(self) -> None:
        """A shared lock on `<database.path>.lock` while the bot runs: `feedbot db restore` refuses
        to replace the file under it (storage/backup.py, RunLock)."""
        path = self.config.database.path
        if self.config.database.url or path == ":memory:" or self.run_lock is not None:
            return
        lock = RunLock(path)
        try:
            held = lock.acquire(exclusive=False)
        except OSError as exc:
            raise StartupError(f"database.path: cannot create {lock.path} ({exc}); check the folder's permissions") from None
        if not held:
            raise StartupError(f"database.path: a restore (`feedbot db restore`) or a copy (`feedbot db copy`) "
                               f"is using {path} now; start the bot once it is done")
        self.run_lock = lock

    async def _backup_failed(self, error: str, last: str) -> None:
        """A failed scheduled backup: one text to each owner chat (the job tells once per streak)."""
        owners = self.desk.config.owner_chat_ids if self.desk is not None else ()
        if not owners:
            return
        message = text(self.desk.config.language, "backup.failed", error=error, last=last)
        now = self.clock.now()
        async with self.db.transaction() as tx:
            for owner in owners:
                await self.effects.enqueue(tx, Target(self.desk.channel_name, owner, None, None), "send_text",
                                           {"text": message, "buttons": []}, now)
        self.sender.wake()

    async def _retention_purge(self) -> None:
        """The privacy purge, and backups past backup.retention_days."""
        await self.privacy.purge()
        removed = await asyncio.to_thread(self.backups.purge_old)
        if removed:
            log.info("retention: %d backup(s) older than %d days deleted", len(removed), self.backups.settings.retention.days)

    def liveness(self) -> dict[str, dict[str, str]]:
        """For /healthz: the sender and the scheduler, each {"status": "ok" | "down" | "off"}."""
        parts = {"sender": {"status": "off"}, "scheduler": {"status": "off"}}
        task = self._sender_task
        if task is not None:
            if task.done():
                error = task.exception() if not task.cancelled() else None
                parts["sender"] = {"status": "down", "error": f"stopped: {type(error).__name__ if error else 'cancelled'}"}
            else:
                parts["sender"] = {"status": "ok"}
        if self.scheduler is not None:
            parts["scheduler"] = _scheduler_status(self.scheduler, datetime.now(timezone.utc))
        parts["backup"] = self.backups.health() if self.scheduler is not None else {"status": "off"}
        return parts

    async def _build_services(self, policy: SurveyPolicy, shop: str, agents: AgentsSection) -> None:
        """The executor, the desk's roles, the sender, the dispatcher, privacy and the engine;
        every service registers its decision handlers with the executor."""
        cfg = self.config
        self.effects = Effects(self.channels, cfg.rollup_rule())  # carries out every decision type (one handler each)
        self.desk = DeskGroup(
            self.effects,
            DeskConfig(
                chat_id=agents.chat_id if self.telegram else None,
                agent_ids=frozenset(agents.agent_ids),
                supervisor=agents.supervisor,
                owner_chat_ids=agents.owner_chat_ids if self.telegram else (),
                language=agents.language,
                topics=agents.topics,
                agent_page=cfg.agent_page.enabled,
            ),
            shop_name=shop,
            timezone=cfg.tz,
        )
        self.threads = TicketThreads(self.db, self.clock, self.desk)
        forum = None
        if self.telegram is not None and agents.chat_id and agents.topics:
            forum = await self.telegram.is_forum(agents.chat_id)
        await self.threads.start(is_forum=forum)
        sender_cfg = cfg.sender
        limiter = None
        if dialect(self.db) == "postgresql":  # other instances may lead later: a 429's pause is shared
            limiter = ClusterRateLimiter(self.channels, db=self.db, instance=self.cluster_settings.instance,
                                         silent_for=(1 - cluster.STEP_DOWN_AT) * self.cluster_settings.lease,
                                         messages_per_second=sender_cfg.messages_per_second)
        self.sender = Sender(
            self.db,
            self.channels,
            limiter=limiter,
            messages_per_second=sender_cfg.messages_per_second,
            max_attempts=sender_cfg.max_attempts,
            backoff_base=sender_cfg.backoff_base,
            backoff_max=sender_cfg.backoff_max,
            clock=self.sender_clock,
            hooks=self.threads,
            instance=self.cluster_settings.instance,
            claim_lease=self.cluster_settings.lease,
        )
        # Alone on the database (SQLite), whatever is 'sending' was this bot's before a crash;
        # with other instances, only rows whose claim ran out.
        await self.sender.recover(expired_only=dialect(self.db) == "postgresql")
        self.customer_desk = CustomerDesk(self.desk, cfg.complaint_policy(), self.threads.use_topics)
        self.agent_desk = AgentDesk(self.desk, wake_sender=self.sender.wake)
        self.sla = SlaWatchdog(self.db, self.clock, self.agent_desk, wake_sender=self.sender.wake)
        feedback = cfg.feedback
        complaints = cfg.complaint_policy()
        self.programs = ProgramService(
            self.db, self.clock, feedback, policy, shop, self.effects, wake_sender=self.sender.wake,
            vip=(float(complaints.vip_spend_12m), complaints.vip_orders_12m),
            channel_order=cfg.survey.channel_order,
        )
        self.agent_desk.resolution_survey = self.programs.ask_instead_of_rating
        global_limit = feedback.enabled or feedback.max_per_period > 1  # else the purchase CSAT's own fatigue, as before
        if self.zalo is not None:
            self.routes = SurveyRoutes(
                self.db, self.clock, cfg.zns_policy(), zalo=self.zalo, zns_channel=self.zns, effects=self.effects,
                owners=Owners(self.desk.channel_name, self.desk.config.owner_chat_ids, agents.language),
                shop_name=shop, web_link=self.web_chat_url if cfg.web.enabled else None,
                desk=self.customer_desk, wake_sender=self.sender.wake, refresh_every=cfg.zalo.refresh_every,
                channel_order=cfg.survey.channel_order, comment_window=policy.comment_window, wording=feedback.wording,
            )
            if self.routes.policy.resolution_usable:  # a resolved complaint's rating by ZNS where its chat is closed
                self.agent_desk.ask_resolution = self.routes.ask_resolution
        self.dispatcher = SurveyDispatcher(
            self.db, self.clock, policy, shop, self.effects, wake_sender=self.sender.wake,
            channel_order=cfg.survey.channel_order,
            demo_policy=demo.demo_policy(policy) if cfg.web_demo else None,
            start_token_ttl=timedelta(days=cfg.privacy.start_token_days),
            routes=self.routes,
            wording=feedback.wording,
            limit_reached_since=self.programs.limit_reached_since if global_limit else None,
        )
        self.privacy = Privacy(self.db, self.clock, retention_days=cfg.privacy.retention_days, shop_name=shop,
                               public_url=cfg.http.public_url,
                               start_token_days=cfg.privacy.start_token_days,
                               trust_first_token_chat=cfg.privacy.trust_first_token_chat, effects=self.effects)
        self.sender.failure_listeners.append(self.privacy.file_undelivered)
        self.order_sources = SourceRegistry(
            self.db, cfg.sources, kiotviet_urls=(cfg.orders.kiotviet_token_url, cfg.orders.kiotviet_api_url))
        self.orders = OrderIntake(self.db, self.clock, policy, cfg.survey.touchpoints,
                                  alert=self._tell_owners, kiotviet=self.order_sources.kiotviet,
                                  wake_sender=self.sender.wake, programs=self.programs)
        for service in (self.customer_desk, self.agent_desk, self.privacy, self.dispatcher, self.programs):
            service.register(self.effects)
        self.engine = Engine(
            self.db,
            self.clock,
            self.channels,
            self.dispatcher,
            self.effects,
            shop_name=shop,
            default_language=cfg.shop.language,
            policy=policy,
            complaints=cfg.complaint_policy(),
            desk=self.desk,
            wake_sender=self.sender.wake,
            privacy=self.privacy,
            agents_reachable=self.desk.config.chat_id is not None or cfg.agent_page.enabled,
            feedback=feedback,
        )
        if self.routes is not None:
            self.engine.link_request = self.routes.request_info
        self.programs.listeners.append(lambda settings: setattr(self.engine, "feedback", settings))
        await self.programs.refresh()  # the owners' edits of programs, from the dashboard

    async def _serve_http(self, policy: SurveyPolicy, shop: str, webhook_secret: str, web_secrets: Any) -> None:
        """One aiohttp app: the shop's API, the webhooks, the web chat, the agent page."""
        cfg = self.config
        http = HttpApi(
            db=self.db,
            clock=self.clock,
            policy=policy,
            touchpoints=cfg.survey.touchpoints,
            api_token=self.api_token,
            max_body_bytes=cfg.http.max_body_bytes,
            bot_username=lambda: self.bot_username,
            reports=self.digests,
            web_link=self.web_chat_url if self.web else None,
            liveness=self.liveness,
            programs=self.programs,
            stages=cfg.survey.stages,
            role=lambda: self.cluster.role,
            trusted_proxies=cfg.http.trusted_proxies,
        )
        web_app = http.make_app()
        self.privacy.add_routes(web_app)  # /mydata/<token>: the download link on Zalo
        if self.telegram is not None and cfg.telegram_webhook:
            self.telegram_webhook = TelegramWebhook(self.engine.receive, secret=webhook_secret)
            self.telegram_webhook.register(web_app)
        if self.zalo is not None:
            self.zalo_webhook = ZaloWebhook(
                self.engine.record, self.engine.process, self.zalo, oa_secret_key=cfg.zalo.oa_secret_key,
                max_event_age=cfg.zalo.max_event_age, clock=self.clock,
            )
            self.zalo_webhook.register(web_app)
        self.order_webhooks = OrderWebhooks(self.orders, self.order_sources.get)
        self.order_webhooks.register(web_app)
        if self.web is not None:
            chat = web_chat.WebChat(
                db=self.db, clock=self.clock, receive=self.engine.receive, channel=self.web, secrets=web_secrets,
                limits=web_chat.WebLimits.from_config(cfg), shop_name=shop, public_url=cfg.http.public_url,
                demo=self.demo_purchase if cfg.web_demo else None,
            )
            chat.add_routes(web_app)
            self.customer_desk.ticket_gate = chat.ticket_allowed
        self.accounts = Accounts(self.db, self.clock, cfg.account_policy())
        telegram_sign_in = None
        if cfg.accounts.telegram_login and self.telegram is not None and self.bot_username:
            telegram_sign_in = TelegramSignIn(bot_username=self.bot_username, bot_token=cfg.telegram.token)
        self.web_auth = WebAuth(self.accounts, api_token=self.api_token, shop_name=shop,
                                language=cfg.agents.language, public_url=cfg.http.public_url, telegram=telegram_sign_in,
                                trusted_proxies=cfg.http.trusted_proxies)
        self.web_auth.register(web_app)
        anonymous = frozenset(kind.name for kind in CHANNEL_TYPES if not kind.proves_identity)
        photo_stores = {kind.name: kind.photos for kind in CHANNEL_TYPES if kind.photos is not None}
        self.agent_page = await agent_page.mount(web_app, cfg, self.db, self.clock, self.agent_desk, self.web_auth,
                                                 anonymous, self.telegram.download if self.telegram else None,
                                                 photo_stores)
        if self.agent_page is not None:  # "Gửi khảo sát" and the order import form
            AgentOrders(self.agent_page, self.orders, policy, cfg.survey.touchpoints).register(web_app)
        self.dashboard = await dashboard.mount(web_app, db=self.db, clock=self.clock, auth=self.web_auth, timezone=cfg.tz,
                                               language=cfg.agents.language, shop_name=shop)
        self.dashboard_programs = await dashboard_programs.mount(
            web_app, db=self.db, clock=self.clock, auth=self.web_auth, dashboard=self.dashboard,
            admin=ProgramAdmin(self.db, self.clock, self.programs) if cfg.feedback.program_tables else None,
            stages=cfg.survey.stages, drop_points=cfg.digest.alert_drop, min_answers=cfg.digest.alert_min_answers,
            language=cfg.agents.language)
        # Connection caps and read timeouts in front of aiohttp (see bot/http/connections.py).
        self.guard = ConnectionGuard(self.connection_limits)
        self.guard.fit_to_descriptors()
        self.guard.install_accept_log(asyncio.get_running_loop())
        web_app.middlewares.append(self.guard.middleware)  # innermost: next to the handler's body reads
        self._runner = web.AppRunner(web_app, access_log=None,
                                     keepalive_timeout=self.connection_limits.keepalive_timeout)
        await self._runner.setup()
        site = GuardedSite(self._runner, cfg.http.host, cfg.http.port, self.guard)
        try:
            await site.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise StartupError(f"port {cfg.http.port} is in use: set http.port") from None
        self.port = self._runner.addresses[0][1]
        await self._offer_setup()

    async def _offer_setup(self) -> None:
        """A fresh install has no account: print a one-time link that creates the first owner
        (on the console, not in the log: it is a key until used)."""
        cfg = self.config
        base = cfg.http.public_url or f"http://{_display_host(cfg.http.host)}:{self.port}"
        self.setup_link = await self.web_auth.offer_setup(base)
        if self.setup_link:
            log.warning("no web accounts yet: create the first owner with the setup link printed on the console,"
                        " or `feedbot user add <login> --role owner`")
            print(f"\nfeedbot: no accounts yet. Create the first owner here (works once, until restart):\n  {self.setup_link}\n",
                  file=sys.stderr, flush=True)

    async def _start_telegram(self) -> None:
        cfg = self.config
        sender_cfg = cfg.sender
        self.telegram = TelegramChannel(
            cfg.telegram.token,
            api_base_url=cfg.telegram.api_base_url,
            request_timeout=sender_cfg.request_timeout,
            per_chat_interval=sender_cfg.per_chat_interval,
            group_messages_per_minute=sender_cfg.group_messages_per_minute,
            poll_timeout=cfg.telegram.poll_timeout,
        )
        try:
            username = await self.telegram.start()
        except Exception as exc:
            raise StartupError(_telegram_start_error(exc, cfg.telegram.api_base_url)) from None
        self.bot_username = self.bot_username or username
        self.channels["telegram"] = self.telegram

    async def _start_zalo(self) -> None:
        z = self.config.zalo
        self.zalo = ZaloChannel(
            app_id=z.app_id, app_secret=z.app_secret, access_token=z.access_token,
            refresh_token=z.refresh_token, tokens=DbTokenStore(self.db, self.clock, z.refresh_token), clock=self.clock,
            api_base_url=z.api_base_url, oauth_base_url=z.oauth_base_url,
            request_timeout=self.config.sender.request_timeout,
            per_chat_interval=self.config.sender.per_chat_interval,
            messages_per_second=z.messages_per_second, buttons=z.buttons, refresh_margin=z.refresh_margin,
            last_message=DbLastMessage(self.db),
        )
        await self.zalo.start()
        self.channels["zalo"] = self.zalo
        policy = self.config.zns_policy()
        if policy.enabled:
            self.zns = ZnsChannel(self.zalo, api_base_url=policy.api_base_url,
                                  messages_per_second=policy.messages_per_second,
                                  night_ban=lambda at: routing.night_ban_ends(at, policy), clock=self.clock)
            self.channels["zns"] = self.zns

    def _start_scheduler(self) -> None:
        interval = self.config.survey.dispatch_interval.total_seconds()
        scheduler = AsyncIOScheduler(timezone=self.config.tz)
        jobs = (
            ("dispatch-due-surveys", self.dispatcher.dispatch_due, interval),
            ("expire-surveys", self.dispatcher.expire, HOUSEKEEPING_INTERVAL_S),
            ("survey-reminders", self.dispatcher.remind, HOUSEKEEPING_INTERVAL_S),
            ("dispatch-program-surveys", self.programs.dispatch_due, interval),
            ("expire-program-surveys", self.programs.expire, HOUSEKEEPING_INTERVAL_S),
            ("route-complaints", self.programs.route_new_complaints, interval),
            ("sla-watchdog", self.sla.watch_sla, self.config.sla.watchdog_interval.total_seconds()),
            ("retention-purge", self._retention_purge, self.config.privacy.purge_interval.total_seconds()),
        )
        if self.routes is not None:
            # Checked every half hour; a pair older than zalo.refresh_every is refreshed (sends or not).
            jobs += (("zalo-token-keepalive", self.routes.keep_token_alive, TOKEN_CHECK_S),)
            if self.zns is not None and self.routes.policy.read_back:
                jobs += (("zns-ratings", self.routes.poll_ratings, self.routes.policy.rating_poll_interval.total_seconds()),)
        if self.digests.settings.enabled:  # to the owners' chats, and/or as the digest.ready webhook event
            # A frequent check, not a cron: whatever week is due and unsent goes out, so a
            # Monday missed while the bot was down is sent as soon as it is back.
            jobs += (("weekly-digest", self.digests.send_due, self.config.digest.check_interval.total_seconds()),)
        if self.feedback_digests.can_send:  # the owners' feedback page, departments' and store managers' slices
            jobs += (("weekly-feedback-digests", self.feedback_digests.send_due,
                      self.config.digest.check_interval.total_seconds()),)
        for job_id, func, seconds in jobs:
            # coalesce + max_instances=1: a slow run is never doubled up; the first run is
            # now, so surveys that came due while the bot was down go out at start.
            scheduler.add_job(
                self._leader_only(func), "interval", seconds=seconds, id=job_id, coalesce=True, max_instances=1,
                next_run_time=datetime.now(timezone.utc),
            )
        if self.backups.settings.enabled:
            # Not at start: one interval after the newest backup (at least a minute from now).
            scheduler.add_job(self.backups.run, "interval", seconds=self.backups.settings.interval.total_seconds(),
                              id="backup", coalesce=True, max_instances=1, next_run_time=self.backups.first_run(datetime.now(timezone.utc)))
        scheduler.start()
        self.scheduler = scheduler

    async def stop(self) -> None:
        if self.scheduler is not None:
            if self.scheduler.running:  # it may have stopped on its own (/healthz says so)
                self.scheduler.shutdown(wait=False)
            self.scheduler = None
        if self.webhooks is not None:
            self.webhooks.stop()  # a pass under way ends with the sender's; else cancelled (leases redeliver)
        await self.cluster.stop()  # a leader stops leading and hands the lease over at once
        await self._follow()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.zalo_webhook is not None:
            await self.zalo_webhook.drain()
        if self.order_webhooks is not None:
            await self.order_webhooks.drain()
        if self.order_sources is not None:
            await self.order_sources.close()
        if self.sender is not None:
            await self.sender.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.telegram is not None:
            await self.telegram.close()
        if self.zalo is not None:
            await self.zalo.close()
        if self.web is not None:
            await self.web.close()
        await self.db.close()
        if self.guard is not None:  # last: an accept() retry may still fire while the rest closes
            self.guard.remove_accept_log(asyncio.get_running_loop())
        if self.run_lock is not None:
            self.run_lock.release()
            self.run_lock = None

    async def _tell_owners(self, tx: Any, key: str, params: dict[str, str], now: datetime) -> None:
        """An alert to the owners' Telegram chats (e.g. an order source refusing requests)."""
        if self.telegram is None:
            return
        lang = self.config.agents.language
        for owner in self.config.agents.owner_chat_ids:
            await self.effects.enqueue(tx, Target("telegram", owner, None, None), "send_text",
                                       {"text": text(lang, key, **params), "buttons": []}, now)

    @property
    def base_url(self) -> str:
        return f"http://{self.config.http.host}:{self.port}"

    def web_chat_url(self, link_token: str | None = None) -> str:
        """The web chat page (with a link token: the customer's survey), public address first."""
        return web_chat.chat_url(self.config.http.public_url or self.base_url, link_token)

    async def demo_purchase(self) -> demo.PurchaseOutcome:
        cfg = self.config
        return await demo.create_demo_purchase(self.db, self.clock, cfg.survey_policy(), cfg.survey.touchpoints)


def _scheduler_status(scheduler: AsyncIOScheduler, now: datetime) -> dict[str, str]:
    """Down when it stopped, or when a job's next run is overdue by more than its interval
    (coalesced jobs are never behind while the scheduler's loop turns)."""
    if not scheduler.running:
        return {"status": "down", "error": "not running"}
    for job in scheduler.get_jobs():
        interval = getattr(job.trigger, "interval", None)
        grace = max(SCHEDULER_GRACE_S, interval.total_seconds() if interval is not None else 0.0)
        if job.next_run_time is not None and (now - job.next_run_time).total_seconds() > grace:
            return {"status": "down", "error": f"job {job.id} overdue since {job.next_run_time.isoformat()}"}
    return {"status": "ok"}


def feedback_digest_for(cfg: Config, db: Any, clock: Clock, *, telegram: bool,
                        wake_sender: Any = lambda: None) -> FeedbackDigestService:
    """The digests of issue 21 as the config describes them; without Telegram there is no
    chat to send them to (pages are still built for reports)."""
    d = cfg.digest
    return FeedbackDigestService(
        db, clock, cfg.feedback if telegram else replace(cfg.feedback, routes=NO_ROUTES), timezone=cfg.tz,
        shop_name=cfg.shop.name, stages=cfg.survey.stages,
        owner_chat_ids=cfg.agents.owner_chat_ids if telegram else (), language=d.language,
        weekday=d.weekday, at=d.time, drop_points=d.alert_drop, min_answers=d.alert_min_answers,
        enabled=d.enabled, wake_sender=wake_sender,
    )
