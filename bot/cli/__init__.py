"""The `feedbot` command line: main (run, digest, export, ...), privacy and web subcommands."""
