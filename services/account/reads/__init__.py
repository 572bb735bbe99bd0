"""The read side of the account service: query answers, positions as of a time, analytics."""
