"""The HTTP adapter: Connexion's pipeline with ours inserted, the contract served as written,
and the server that bounds what clients send."""
