"""`alluse`: the operator's command line. Each area registers its subcommands here."""
