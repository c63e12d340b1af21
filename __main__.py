"""`python -m raftka`: the same entry point as the `raftka` console command."""

from raftka.api.cli.main import main

main()
