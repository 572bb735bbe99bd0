"""The web console: pages for operators and portfolio owners over the platform's public interfaces."""
