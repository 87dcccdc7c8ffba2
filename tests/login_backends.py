"""The test suite's way past django-axes for logins made without a request (the test client's `login()`)."""

from axes.backends import AxesStandaloneBackend


class RequestOptionalAxesBackend(AxesStandaloneBackend):
    """Axes's check wherever a request comes with the login, as every login from the network does (the login views,
    the live server of the end-to-end tests); the test client's `login()` and direct `authenticate()` calls bring
    none, which the shipped backend refuses so that a view forgetting it cannot slip past the throttle."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
