#!/usr/bin/env python3
"""Runs a local ClickHouse server for tests from the `chdb-core` wheel.

Usage: clickhouse-server.py DATA_DIR HTTP_PORT TCP_PORT [CONFIG_DIR [USER:PASSWORD]]

The wheel ships the real ClickHouse engine. Its one-shot entry point
`chdb._chdb.query(sql, fmt, path=DATA_DIR)` runs ClickHouse's LocalServer, which
reads `./config.xml` from the current directory and can open the HTTP and
native TCP listeners. The listeners live only while that one call runs, so the
call starts them and then blocks on a query that sleeps one second per row of
an endless table (it idles at ~0% CPU).

Stopping: the blocking query is killed over HTTP with
`KILL QUERY WHERE query LIKE '%sleepEachRow%' AND query NOT LIKE '%KILL%'`;
the call then returns and the engine shuts down cleanly. SIGTERM/SIGINT sent
to this process do exactly that. Never `KILL QUERY WHERE 1`: it would also
kill the blocking query of a neighbour and every client query in flight.

CONFIG_DIR defaults to `DATA_DIR/../config`. USER:PASSWORD adds a user with a password
(users.xml, loaded through <user_directories>: `CREATE USER` is refused in this mode) beside
`default`, which keeps no password and every right: the engine's own in-process session logs
in as `default`, and the tests use it. Data in DATA_DIR survives
restarts (and kill -9). A second instance on the same DATA_DIR is refused by
the engine ("Cannot lock file .../status").
"""

import os
import signal
import sys
import threading
import time
import urllib.parse
import urllib.request

# One statement list, one call: chdb runs the statements in order in one
# LocalServer, so the listeners opened by the first two stay up while the
# third one blocks.
SERVE_SQL = (
    "SYSTEM START LISTEN HTTP; "
    "SYSTEM START LISTEN TCP; "
    "SELECT sum(sleepEachRow(1)) FROM system.numbers SETTINGS max_block_size = 1"
)
KILL_SQL = "KILL QUERY WHERE query LIKE '%sleepEachRow%' AND query NOT LIKE '%KILL%'"


def log(msg):
    print(f"[clickhouse-server.py] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


def xml_text(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_users(config_dir, user, password):
    """users.xml: `default` as the engine has it (no password, all rights) and `user`."""
    loopback = "<networks><ip>127.0.0.1</ip><ip>::1</ip></networks>"
    xml = (
        "<clickhouse>\n"
        "    <profiles><default/></profiles>\n"
        "    <quotas><default/></quotas>\n"
        "    <users>\n"
        "        <default><password></password>"
        f"{loopback}<profile>default</profile><quota>default</quota>"
        "<access_management>1</access_management></default>\n"
        f"        <{user}><password>{xml_text(password)}</password>"
        f"{loopback}<profile>default</profile><quota>default</quota></{user}>\n"
        "    </users>\n"
        "</clickhouse>\n"
    )
    path = os.path.join(config_dir, "users.xml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(xml)
    return path


def write_config(config_dir, http_port, tcp_port, users_path=None):
    os.makedirs(config_dir, exist_ok=True)
    users = ""
    if users_path:
        users = (
            "    <user_directories><users_xml>"
            f"<path>{xml_text(users_path)}</path>"
            "</users_xml></user_directories>\n"
        )
    xml = (
        "<clickhouse>\n"
        "    <listen_host>127.0.0.1</listen_host>\n"
        f"    <http_port>{http_port}</http_port>\n"
        f"    <tcp_port>{tcp_port}</tcp_port>\n"
        f"{users}"
        "</clickhouse>\n"
    )
    path = os.path.join(config_dir, "config.xml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(xml)
    return path


def kill_blocking_query(http_port):
    """Asks the engine to cancel the blocking query; returns True on success."""
    url = f"http://127.0.0.1:{http_port}/?" + urllib.parse.urlencode({"user": "default"})
    req = urllib.request.Request(url, data=KILL_SQL.encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            resp.read()
        return True
    except OSError as e:
        log(f"KILL QUERY over HTTP failed: {e}")
        return False


def main():
    if len(sys.argv) not in (4, 5, 6):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    data_dir = os.path.abspath(sys.argv[1])
    http_port = int(sys.argv[2])
    tcp_port = int(sys.argv[3])
    if len(sys.argv) >= 5:
        config_dir = os.path.abspath(sys.argv[4])
    else:
        config_dir = os.path.join(os.path.dirname(data_dir), "config")

    os.makedirs(data_dir, exist_ok=True)
    os.makedirs(config_dir, exist_ok=True)
    users_path = None
    if len(sys.argv) == 6:
        user, sep, password = sys.argv[5].partition(":")
        if not sep or not user.isidentifier():
            print("USER:PASSWORD expected, the user a plain identifier", file=sys.stderr)
            return 2
        users_path = write_users(config_dir, user, password)
    config_path = write_config(config_dir, http_port, tcp_port, users_path)
    # LocalServer reads ./config.xml: chdir before the engine is loaded.
    os.chdir(config_dir)
    log(f"config {config_path}, data {data_dir}, http {http_port}, tcp {tcp_port}")

    import chdb  # noqa: E402  (must come after the chdir)

    log(f"engine {chdb.engine_version} (chdb-core {chdb.__version__}) loaded")

    outcome = {}

    def serve():
        try:
            res = chdb._chdb.query(SERVE_SQL, "TSV", path=data_dir)
            outcome["result"] = res
        except BaseException as e:  # the engine reports failures as exceptions
            outcome["error"] = e

    stopping = threading.Event()

    def on_signal(signum, _frame):
        if stopping.is_set():
            return
        stopping.set()
        log(f"signal {signum}: cancelling the blocking query")
        kill_blocking_query(http_port)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    server = threading.Thread(target=serve, name="clickhouse", daemon=True)
    server.start()
    # join() with a timeout keeps the main thread able to run signal handlers.
    while server.is_alive():
        server.join(0.5)

    if "error" in outcome:
        log(f"engine stopped with an error: {outcome['error']}")
        return 1
    if not stopping.is_set():
        log("the blocking query ended (killed over HTTP); engine shut down")
    else:
        log("engine shut down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
