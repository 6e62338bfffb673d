"""The shell: config, app wiring, channels, HTTP API, scheduler, CLI."""
