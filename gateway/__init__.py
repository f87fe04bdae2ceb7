"""The Agora API gateway: one Flask app in front of the Nameko services."""
