"""The texts of every notification: plain-text email (subject and body) and SMS.

One ``string.Template`` set per template name, filled from the event's data
(``render(template, data, name)``). Pure: no I/O, unit tested. Values from the
event are made single-line before they are substituted, so an item name cannot
forge an email header or a fake paragraph, and ``$`` in data is never expanded
(substitution is not recursive).
"""

import datetime
import string
from dataclasses import dataclass

# ISO 4217 minor units that are not 2 (the rest of the world uses cents).
_EXPONENTS = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI"),
        0,
    ),
    **dict.fromkeys(("VND", "VUV", "XAF", "XOF", "XPF"), 0),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
}
SUBJECT_MAX = 200
SMS_MAX = 320  # two concatenated segments


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    sms: str


@dataclass(frozen=True)
class _Texts:
    subject: string.Template
    body: string.Template
    sms: string.Template


def _texts(subject, body, sms):
    return _Texts(string.Template(subject), string.Template(body), string.Template(sms))


_SIGNATURE = """
--
Agora
This message was sent automatically; replies are not read.
"""

TEXTS = {
    "order_confirmed": _texts(
        "Your order $order_ref is confirmed",
        """$greeting

thank you for your order. Payment is complete and your order is confirmed.

Order: $order_id
$items
Total: $total
Payment reference: $payment_id
""",
        "Agora: order $order_ref is confirmed. Total $total.",
    ),
    "payment_failed": _texts(
        "Payment for order $order_ref did not go through",
        """$greeting

we could not take the payment for your order $order_id.

Reason: $reason

Nothing has been charged. If the order cannot be paid it will be cancelled.
""",
        "Agora: payment for order $order_ref failed ($reason).",
    ),
    "order_cancelled": _texts(
        "Your order $order_ref has been cancelled",
        """$greeting

your order $order_id has been cancelled$why.

Any amount already charged is refunded to your original payment method.
""",
        "Agora: order $order_ref has been cancelled$why.",
    ),
    "order_rejected": _texts(
        "We could not accept your order $order_ref",
        """$greeting

we are sorry: your order $order_id could not be accepted.

Reason: $reason
$shortages
Nothing has been charged.
""",
        "Agora: order $order_ref could not be accepted ($reason). Nothing was charged.",
    ),
    "order_expired": _texts(
        "Your order $order_ref has expired",
        """$greeting

your order $order_id was not completed in time and has expired (it was $previous_status).

Any amount already charged is refunded to your original payment method.
""",
        "Agora: order $order_ref has expired.",
    ),
    "refund_issued": _texts(
        "Refund of $amount for order $order_ref",
        """$greeting

we have refunded $amount for your order $order_id.

Reason: $reason
Payment reference: $payment_id
Refund reference: $refund_id

The refund may take a few days to appear on your statement.
""",
        "Agora: $amount refunded for order $order_ref.",
    ),
    "receipt": _texts(
        "Receipt $number for order $order_ref",
        """$greeting

here is your receipt.

Receipt number: $number
Issued: $issued_at
Order: $order_id
Payment reference: $payment_id
$items
Total paid: $amount
""",
        "Agora: receipt $number for order $order_ref, $amount paid.",
    ),
    # Sent before anything else may be: the contact is proven by answering it.
    "email_verification": _texts(
        "Confirm your email address for Agora",
        """$greeting

please confirm that this is your email address by opening this link:

$link

The link works once, until $expires_at. Until you confirm, we send nothing
else to this address. If you did not create an Agora account, ignore this
message.
""",
        "Agora: confirm your email address: $link",
    ),
    "phone_verification": _texts(
        "Your Agora verification code",
        """$greeting

your verification code is $code (valid until $expires_at).
""",
        "Agora: your verification code is $code. It expires at $expires_at. "
        "If you did not ask for it, ignore this message.",
    ),
}

_CANCEL_REASONS = {
    "customer": " as you requested",
    "payment_failed": " because the payment did not go through",
    "commit_failed": " because the items could no longer be set aside for you",
}


def one_line(value):
    """``value`` as text on one line: control characters and runs of spaces become one space."""
    text = "" if value is None else str(value)
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(cleaned.split())


def format_money(money):
    """``{"amount": 2598, "currency": "EUR"}`` -> ``"EUR 25.98"`` (minor units, no floats)."""
    amount = money["amount"]
    currency = one_line(money["currency"]).upper()
    exponent = _EXPONENTS.get(currency, 2)
    sign = "-" if amount < 0 else ""
    whole, minor = divmod(abs(int(amount)), 10**exponent)
    text = f"{whole:,}"
    if exponent:
        text += f".{minor:0{exponent}d}"
    return f"{currency} {sign}{text}"


def format_items(items):
    """One line per order line: ``2 x Blue mug (MUG-1)  EUR 25.98``."""
    lines = []
    for item in items or ():
        line = f"  {int(item['quantity'])} x {one_line(item.get('name')) or item.get('sku', '?')}"
        if item.get("sku"):
            line += f" ({one_line(item['sku'])})"
        if item.get("line_total"):
            line += f"  {format_money(item['line_total'])}"
        lines.append(line)
    return "Items:\n" + "\n".join(lines) + "\n" if lines else ""


def format_shortages(shortages):
    lines = [
        f"  {one_line(s['sku'])}: {int(s['requested'])} requested, {int(s['available'])} available"
        for s in shortages or ()
    ]
    return "Not enough stock:\n" + "\n".join(lines) + "\n" if lines else ""


def format_timestamp(value):
    """An event timestamp (``...Z``) as ``2024-05-01 12:00 UTC``; other text as it is."""
    try:
        moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return one_line(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _context(data, name):
    order_id = one_line(data.get("order_id"))
    context = {
        "greeting": f"Hello {one_line(name)}," if one_line(name) else "Hello,",
        "order_id": order_id,
        "order_ref": order_id[:8].upper(),
        "payment_id": one_line(data.get("payment_id")) or "none",
        "refund_id": one_line(data.get("refund_id")),
        "reason": one_line(data.get("reason")) or "not given",
        "previous_status": one_line(data.get("previous_status")) or "open",
        "number": one_line(data.get("number")),
        "issued_at": format_timestamp(data.get("issued_at", "")),
        "items": format_items(data.get("items")),
        "shortages": format_shortages(data.get("shortages")),
        "total": format_money(data["total"]) if data.get("total") else "",
        "amount": format_money(data["amount"]) if data.get("amount") else "",
        "link": one_line(data.get("link")),
        "code": one_line(data.get("code")),
        "expires_at": format_timestamp(data.get("expires_at", "")),
    }
    reason = data.get("reason")
    context["why"] = _CANCEL_REASONS.get(reason, f" ({one_line(reason)})" if reason else "")
    return context


def render(template, data, name=None):
    """The subject, body and SMS text of ``template`` for an event's ``data``."""
    texts = TEXTS[template]
    context = _context(data, name)
    subject = one_line(texts.subject.substitute(context))[:SUBJECT_MAX]
    body = texts.body.substitute(context).rstrip() + "\n" + _SIGNATURE
    sms = one_line(texts.sms.substitute(context))
    if len(sms) > SMS_MAX:
        sms = sms[: SMS_MAX - 1] + "…"
    return Rendered(subject=subject, body=body, sms=sms)
