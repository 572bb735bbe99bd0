"""Thin handlers of the account service: commands, effects, forks and merges, reinvestment,
corrections, and the dispatch tables that route each message type to one of them."""
