"""raftka.api.cli: the `raftka` command: its subcommands, terminal output and `raftka dev`."""
