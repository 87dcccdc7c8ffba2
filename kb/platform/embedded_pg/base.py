"""The database backend of the embedded server: PostgreSQL's, that starts the server before its first connection.

ENGINE "kb.platform.embedded_pg" (kb/settings.py, when DATABASE_URL is empty): every process that connects, whatever
started it (manage.py, uvicorn, a Celery worker, pytest), gets the server and its databases first, and a process that
never connects starts nothing.
"""

from django.db.backends.postgresql import base, client
from django.utils.asyncio import async_unsafe

from kb.platform.embedded_pg import server_ensure_for


class DatabaseClient(client.DatabaseClient):
    def runshell(self, parameters):
        server_ensure_for(self.connection.settings_dict)
        super().runshell(parameters)


class DatabaseWrapper(base.DatabaseWrapper):
    client_class = DatabaseClient

    @async_unsafe
    def get_new_connection(self, conn_params):
        server_ensure_for(self.settings_dict)
        return super().get_new_connection(conn_params)
