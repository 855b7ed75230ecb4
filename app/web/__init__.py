"""The support desk: server-rendered pages for the people who answer affected individuals."""
