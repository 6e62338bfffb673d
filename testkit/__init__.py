"""Test support shared by tests/ and bench/: in-process fakes of the platforms' APIs (Telegram Bot API, Zalo OA) and a clock that moves only when told. Never shipped with the bot."""
