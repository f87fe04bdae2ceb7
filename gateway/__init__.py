"""The Agora API gateway: one Flask app in front of the Nameko services."""

from services.chassis.eventlet_notice import ignore_eventlet_notice

# Each gunicorn worker imports Nameko (and so eventlet) through gateway.app:
# filter its import-time notice first (services.chassis.eventlet_notice says why).
ignore_eventlet_notice()
