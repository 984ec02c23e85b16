"""Pages for people with only a browser wallet: connect (sign a wallet challenge) and the invitation page."""
