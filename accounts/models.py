"""No models: the sign-in throttle keeps its counts in the "signin" cache (a database table
created after `migrate`, see apps.py). This module exists so that post_migrate reaches us."""
