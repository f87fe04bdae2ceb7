"""Demo data, loaded through the services' own RPC contracts (idempotent)."""

from services.auth.schemas import SCOPES
from services.chassis.config import public_url
from services.chassis.errors import Conflict, InvalidCredentials

DEMO_PRODUCTS = [
    ("AGR-TEE-001", "Agora logo tee", "Organic cotton t-shirt with the Agora logo.", 1999),
    ("AGR-MUG-001", "Stoa coffee mug", "Stoneware mug, 350 ml, dishwasher safe.", 1250),
    ("AGR-BAG-001", "Market tote bag", "Heavy canvas tote for the agora and beyond.", 1599),
    ("AGR-NBK-001", "Dialogue notebook", "A5 dotted notebook, 120 pages.", 899),
    ("AGR-PEN-001", "Socratic pen", "Refillable gel pen that asks good questions.", 499),
    ("AGR-CAP-001", "Colonnade cap", "Six-panel cap with embroidered columns.", 2199),
    ("AGR-HOD-001", "Forum hoodie", "Warm fleece hoodie for long debates.", 4999),
    ("AGR-STK-001", "Sticker pack", "Ten vinyl stickers of Greek architecture.", 399),
    ("AGR-BTL-001", "Amphora bottle", "Insulated steel bottle, 750 ml.", 2499),
    ("AGR-PST-001", "Parthenon poster", "Print on 200 g matte paper, 50x70 cm.", 1799),
]

DEMO_WAREHOUSE = "main"
DEMO_STOCK = 100
DEMO_SYNC_ID = "demo-seed-1"


# `agora login` (RFC 8252 7.3): a loopback redirect, matched on any port.
LOGIN_REDIRECT_URI = "http://127.0.0.1/callback"


def web_redirect_uris(config):
    """Where the first-party web client may be sent back to, all derived from the
    gateway's one public address (services.chassis.config.public_url): the
    storefront's /auth/callback, /docs's Swagger UI redirect page, the loopback
    of `agora login`, the storefront on each CORS origin (the Vite dev server),
    then any extra ones the ``demo`` config lists. A moved gateway is re-seeded
    by the next `make run` (clients that exist are updated)."""
    base = public_url(config)
    uris = [f"{base}/auth/callback", f"{base}/docs/oauth2-redirect.html", LOGIN_REDIRECT_URI]
    uris += [f"{origin}/auth/callback" for origin in config["gateway"]["cors"]["origins"]]
    uris += config["demo"]["web_redirect_uris"]
    return list(dict.fromkeys(uris))


def demo_clients(config):
    """The OAuth2 clients of a development platform, from the ``demo`` config."""
    demo = config["demo"]
    return [
        {
            "client_id": demo["web_client_id"],
            "name": "Agora web and mobile",
            "public": True,
            "grant_types": ["password", "refresh_token", "authorization_code"],
            "scopes": list(SCOPES),
            "redirect_uris": web_redirect_uris(config),
        },
        {
            "client_id": demo["integration_client_id"],
            "name": "Agora integrations",
            "public": False,
            "grant_types": ["client_credentials"],
            "scopes": ["catalog:write", "inventory:write"],
            "redirect_uris": [],
            "secret": demo["integration_secret"],
        },
    ]


def seed(rpc, config):
    """Create the demo catalog, users and OAuth2 clients if they do not exist yet.

    Clients that exist are brought in line with the config (so a changed
    AGORA_INTEGRATION_SECRET takes effect at the next start)."""
    created = {"products": 0, "users": 0, "clients": 0, "stock": 0}
    for client in demo_clients(config):
        try:
            rpc.auth.create_client(client)
            created["clients"] += 1
        except Conflict:
            changes = {k: v for k, v in client.items() if k != "client_id"}
            rpc.auth.update_client(client["client_id"], changes)
    for sku, name, description, amount in DEMO_PRODUCTS:
        try:
            rpc.catalog.create_product(
                {
                    "sku": sku,
                    "name": name,
                    "description": description,
                    "price": {"amount": amount, "currency": "EUR"},
                }
            )
            created["products"] += 1
        except Conflict:
            pass
    # Stock for every demo product, as one warehouse sync: idempotent by its id.
    levels = [{"sku": sku, "on_hand": DEMO_STOCK} for sku, *_ in DEMO_PRODUCTS]
    synced = rpc.inventory.sync_warehouse(DEMO_SYNC_ID, DEMO_WAREHOUSE, levels)
    created["stock"] = 0 if synced["replayed"] else synced["applied"]
    demo = config["demo"]
    for email, password, name, roles in (
        (demo["user_email"], demo["user_password"], "Demo Customer", ["customer"]),
        (demo["admin_email"], demo["admin_password"], "Agora Admin", ["customer", "admin"]),
    ):
        try:
            user = rpc.users.register({"email": email, "password": password, "name": name})
            rpc.users.set_roles(user["id"], roles)
            created["users"] += 1
        except Conflict:
            try:
                user = rpc.users.authenticate(email, password)
            except InvalidCredentials:
                continue  # its password was changed: not ours to touch any more
        # Seeding is a trusted admin path: the demo addresses count as proven,
        # so the demo shows order mail without a verification round trip.
        if not user["email_verified"]:
            rpc.users.mark_verified(user["id"])
    return created
