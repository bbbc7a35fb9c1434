"""The world the GitHub tests play in: one repository, its bot, and a spec."""

from __future__ import annotations

REPO = "acme/shop"
BOT = "spec2ship-bot"
APP_ID = 4242
INSTALLATION = 77
SPEC_BODY = """---
spec: health
service: shop
team: payments
---
# Add a health endpoint

GET /health answers 200.
"""
FILES = {
    "README.md": "# shop\n",
    "app.py": "print('shop')\n",
    "specs/health.md": SPEC_BODY,
}
