from django.dispatch import Signal

# Sent by kb.accounts.services.user_deactivate inside its transaction, with `user` and `acting_user`: the hook for
# whatever else lets a user in besides a session (API tokens connect a receiver that revokes theirs).
user_deactivated = Signal()
