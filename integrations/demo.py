"""Demo users and files shared by `manage.py demo` and `manage.py demo_seed`.

The passwords are for the local demo only and are printed on purpose.
"""

from pathlib import Path

DEMO_USERS = {
    "admin": ("admin", "classbridge-admin", "Ada Admin"),
    "mentor": ("mentor", "classbridge-mentor", "Max Mentor"),
}

DEMO_ROSTER = Path(__file__).resolve().parent / "apex" / "demo" / "roster.csv"
TITAN_DEMO_ROSTER = Path(__file__).resolve().parent / "titan" / "demo" / "roster.csv"
TITAN_GUARDRAIL_ROSTER = Path(__file__).resolve().parent / "titan" / "demo" / "roster_guardrail.csv"
