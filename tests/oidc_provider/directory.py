"""Set up the provider's directory from the command line (the tests run it as a process, as an admin would):

python -m tests.oidc_provider.directory client CLIENT_ID SECRET REDIRECT_URI
python -m tests.oidc_provider.directory user USERNAME PASSWORD EMAIL [GROUP ...]   (the groups replace the user's)
"""

import sys

import django


def main(command: str, *arguments: str) -> None:
    django.setup()
    from django.contrib.auth.models import Group, User
    from oauth2_provider.models import Application

    if command == "client":
        client_id, secret, redirect_uri = arguments
        Application.objects.update_or_create(
            client_id=client_id,
            defaults={
                "name": "knowledge base",
                "client_secret": secret,
                "client_type": Application.CLIENT_CONFIDENTIAL,
                "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
                "redirect_uris": redirect_uri,
                "algorithm": Application.RS256_ALGORITHM,
                "skip_authorization": True,
            },
        )
    elif command == "user":
        username, password, email, *groups = arguments
        user, _ = User.objects.get_or_create(username=username)
        user.email = email
        user.set_password(password)
        user.save()
        user.groups.set([Group.objects.get_or_create(name=name)[0] for name in groups])
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main(*sys.argv[1:])
