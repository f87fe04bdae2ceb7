"""``python -m agora.nameko_run run|shell ...``: Nameko's command line (``python -m
nameko``) with Eventlet's import-time deprecation notice filtered out, the
filter being set before Nameko imports eventlet (services.chassis.eventlet_notice)."""

from services.chassis.eventlet_notice import ignore_eventlet_notice

ignore_eventlet_notice()

from nameko.cli.main import main  # noqa: E402

if __name__ == "__main__":
    main()
