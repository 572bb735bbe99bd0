"""`python -m services.integration`: run the integration service until SIGTERM or Ctrl-C."""

from services.integration.app import main

main()
