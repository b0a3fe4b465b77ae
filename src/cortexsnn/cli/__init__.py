"""Command-line interface: ``cortexsnn <subcommand>``; one module per subcommand."""
