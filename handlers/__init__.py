"""The HTTP side: Connexion app, security, validation, problems and one module per resource."""
