"""The account service's state: the unit of work (the handlers' only door), its port, its
buffered writes and repositories, and every SQL statement under store/."""
