"""The integration service: WS2 and WS4 in; account effects and the public lifecycle out."""
