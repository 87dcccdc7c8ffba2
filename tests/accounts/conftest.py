import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import _free_port

SLAPD = Path("/usr/sbin/slapd")
SLAPADD = Path("/usr/sbin/slapadd")
DIRECTORY_LDIF = Path(__file__).with_name("directory.ldif")
SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "directory-admin-pw"

SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {folder}/slapd.pid
database mdb
maxsize 16777216
suffix "{suffix}"
rootdn "{root_dn}"
rootpw {root_password}
directory {folder}/data
access to attrs=userPassword by self read by anonymous auth by * none
access to * by * read
"""


@dataclass
class LdapDirectory:
    uri: str
    root_dn: str
    root_password: str

    def group_members_set(self, group: str, uids: list[str]) -> None:
        """Change a group as a directory administrator would, on the running server."""
        import ldap

        connection = ldap.initialize(self.uri)
        connection.simple_bind_s(self.root_dn, self.root_password)
        members = [f"uid={uid},ou=people,{SUFFIX}".encode() for uid in uids]
        connection.modify_s(f"cn={group},ou=groups,{SUFFIX}", [(ldap.MOD_REPLACE, "member", members)])
        connection.unbind_s()

    def environment(self, group_map: str) -> dict[str, str]:
        """The KB_LDAP_* variables an administrator would set for this directory."""
        return {
            "KB_LDAP_SERVER_URI": self.uri,
            "KB_LDAP_BIND_DN": self.root_dn,
            "KB_LDAP_BIND_PASSWORD": self.root_password,
            "KB_LDAP_USER_SEARCH_BASE": f"ou=people,{SUFFIX}",
            "KB_LDAP_GROUP_SEARCH_BASE": f"ou=groups,{SUFFIX}",
            "KB_LDAP_GROUP_MAP": group_map,
        }


@pytest.fixture(scope="session")
def ldap_directory(tmp_path_factory):
    """A real OpenLDAP server (Debian's slapd) on a free unprivileged port, with tests/accounts/directory.ldif."""
    if not SLAPD.exists():
        pytest.fail("Debian's slapd is needed for the LDAP tests: apt-get install slapd")
    folder = tmp_path_factory.mktemp("slapd")
    (folder / "data").mkdir()
    config = folder / "slapd.conf"
    config.write_text(SLAPD_CONF.format(folder=folder, suffix=SUFFIX, root_dn=ROOT_DN, root_password=ROOT_PASSWORD))
    subprocess.run([SLAPADD, "-f", config, "-l", DIRECTORY_LDIF], check=True, capture_output=True)
    port = _free_port()
    uri = f"ldap://127.0.0.1:{port}"
    # -d keeps slapd in the foreground, so it is this fixture's child to stop.
    server = subprocess.Popen(
        [SLAPD, "-f", config, "-h", uri, "-d", "0"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    directory = LdapDirectory(uri=uri, root_dn=ROOT_DN, root_password=ROOT_PASSWORD)
    try:
        _wait_until_bound(directory, server)
        yield directory
    finally:
        server.terminate()
        server.wait(timeout=20)
        shutil.rmtree(folder, ignore_errors=True)


def _wait_until_bound(directory: LdapDirectory, server: subprocess.Popen, timeout: float = 30) -> None:
    import ldap

    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"slapd exited with {server.returncode}: {server.stderr.read().decode()}")
        try:
            connection = ldap.initialize(directory.uri)
            connection.simple_bind_s(directory.root_dn, directory.root_password)
            connection.unbind_s()
            return
        except ldap.SERVER_DOWN:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
