"""The publish hook that runs inside the prod service."""
