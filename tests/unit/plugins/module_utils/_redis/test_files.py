"""A Redis server's files on this host: which process serves a connection, the data directory from a config
file read as data, exclusive files and an undoable swap."""

import os
import socket
import stat

import pytest

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError
from ansible_collections.keel.ops.plugins.module_utils._redis import files


def write(path, text):
    path.write_text(text)
    return str(path)


def test_config_files_are_read_as_data_the_last_directive_winning(tmp_path):
    conf = write(tmp_path / "redis.conf", "# dir /nope\n  DIR /var/lib/redis\ndir \"/srv/redis data\"\n"
                                          "dbfilename 'cache.rdb'\nsave \"\"\n\nappendfilename x.aof\n")
    directives = files.read_config_file(conf)
    assert directives["dir"] == ["/srv/redis data"] and directives["save"] == [""]
    assert files.config_locations(directives, conf, (7, 0, 15)) == {
        "dir": "/srv/redis data", "dbfilename": "cache.rdb", "aof": "appendonlydir"}
    assert files.config_locations(directives, conf, (6, 2, 14))["aof"] == "x.aof"


@pytest.mark.parametrize("text, message", [
    ("dir /data\ninclude /etc/redis/more.conf\n", "includes other files .line 2.*set data_dir"),
    ("dir ./\n", "sets dir ./, a relative path"),
    ("port 6379\n", "sets no dir"),
    ('dir "/unclosed\n', "line 1 cannot be read"),
])
def test_config_files_that_do_not_tell_the_data_directory_are_refused(tmp_path, text, message):
    conf = write(tmp_path / "redis.conf", text)
    with pytest.raises(ConfigError, match=message):
        files.config_locations(files.read_config_file(conf), conf, (7, 0, 0))


def test_an_unreadable_config_file_says_what_to_do(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the server's config file .*set data_dir"):
        files.read_config_file(str(tmp_path / "missing.conf"))


def test_the_running_server_must_agree_with_the_config_file(tmp_path):
    declared = {"dir": str(tmp_path), "dbfilename": "dump.rdb", "aof": "appendonlydir"}
    files.check_agreement(declared, "the config file /c", dict(declared, dir=str(tmp_path) + "/."))
    with pytest.raises(ConfigError, match=r"data directory is %s according to the config file /c, but /etc according "
                                          r"to the running server \(CONFIG GET dir\)" % tmp_path):
        files.check_agreement(declared, "the config file /c", dict(declared, dir="/etc"))
    with pytest.raises(ConfigError, match=r"RDB file name is dump.rdb .* but passwd .*CONFIG GET dbfilename"):
        files.check_agreement(declared, "the config file /c", dict(declared, dbfilename="passwd"))
    files.check_agreement(declared, "x", dict(declared, aof="other"), fields=("dir", "dbfilename"))


@pytest.mark.parametrize("name", ["", ".", "..", "../dump.rdb", "/etc/passwd", "a/b", "a\0b"])
def test_file_names_must_be_plain(name):
    with pytest.raises(ConfigError, match="is not a plain file name"):
        files.plain_name(name, "dbfilename")


def test_data_files_resolve_the_directory_and_refuse_symlinks_at_the_files(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(str(real), str(tmp_path / "link"))
    found = files.DataFiles(str(tmp_path / "link"), "dump.rdb", "appendonlydir")
    assert (found.directory, found.rdb, found.aof) == (str(real), str(real / "dump.rdb"), str(real / "appendonlydir"))
    os.symlink("/etc/passwd", str(real / "dump.rdb"))
    with pytest.raises(ConfigError, match="dump.rdb is a symbolic link"):
        files.DataFiles(str(real), "dump.rdb")
    os.unlink(str(real / "dump.rdb"))
    (real / "dump.rdb").mkdir()
    with pytest.raises(ConfigError, match="is not a regular file"):
        files.DataFiles(str(real), "dump.rdb")
    with pytest.raises(ConfigError, match="is not a directory"):
        files.DataFiles(str(tmp_path / "missing"), "dump.rdb")


def test_exclusive_files_are_never_written_through_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(str(victim), str(tmp_path / "staged"))
    with pytest.raises(FileExistsError):
        files.create_exclusive(str(tmp_path / "staged"))
    os.close(files.create_exclusive(str(tmp_path / "new")))
    assert stat.S_IMODE(os.stat(str(tmp_path / "new")).st_mode) == 0o600 and victim.read_text() == "precious"


def swap_in(tmp_path):
    (tmp_path / "dump.rdb").write_text("old rdb")
    (tmp_path / "appendonlydir").mkdir()
    (tmp_path / ".staged").write_text("new rdb")
    return files.FileSwap(str(tmp_path / ".staged"), str(tmp_path / "dump.rdb"), [str(tmp_path / "appendonlydir")])


def test_a_swap_keeps_the_previous_files_and_can_be_undone(tmp_path):
    swap = swap_in(tmp_path)
    swap.apply()
    assert swap.placed and (tmp_path / "dump.rdb").read_text() == "new rdb"
    assert not (tmp_path / "appendonlydir").exists()
    kept = swap.previous()
    assert [os.path.basename(path).split(".pre-restore-")[0] for path in kept] == ["dump.rdb", "appendonlydir"]
    assert "in place at %s" % (tmp_path / "dump.rdb") in swap.where() and kept[0] in swap.where()
    swap.revert()
    assert not swap.placed and (tmp_path / "dump.rdb").read_text() == "old rdb"
    assert (tmp_path / "appendonlydir").is_dir()
    assert (tmp_path / ".staged").read_text() == "new rdb" and swap.previous() == []
    assert swap.where() == "the snapshot's RDB is kept at %s" % (tmp_path / ".staged")


def test_names_in_use_are_never_taken(tmp_path):
    (tmp_path / "kept").write_text("1")
    (tmp_path / "kept-2").mkdir()
    assert files.unused_name(str(tmp_path / "kept")) == str(tmp_path / "kept-3")
    assert files.unused_name(str(tmp_path / "free")) == str(tmp_path / "free")


def test_a_swap_interrupted_between_two_renames_is_undone_from_what_is_on_disk(tmp_path):
    swap = swap_in(tmp_path)
    swap.kept.append((str(tmp_path / "dump.rdb"), str(tmp_path / "dump.rdb.aside")))  # noted, never renamed
    swap.revert()
    assert (tmp_path / "dump.rdb").read_text() == "old rdb" and (tmp_path / ".staged").exists()


def test_set_directive_rewrites_the_config_file_in_place(tmp_path):
    conf = tmp_path / "redis.conf"
    conf.write_text("port 1\n# appendonly yes\nappendonly no\nsave \"\"\n")
    os.chmod(str(conf), 0o640)
    files.set_directive(str(conf), "appendonly", "yes")
    assert conf.read_text() == "port 1\n# appendonly yes\nappendonly yes\nsave \"\"\n"
    assert stat.S_IMODE(os.stat(str(conf)).st_mode) == 0o640 and os.listdir(str(tmp_path)) == ["redis.conf"]
    conf.write_text("port 1")
    files.set_directive(str(conf), "appendonly", "yes")
    assert conf.read_text() == "port 1\nappendonly yes\n"


def test_the_process_at_the_other_end_of_a_connection_is_found(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    accepted, _peer = listener.accept()
    try:
        assert files.peer_process(client) == os.getpid()  # this process holds the server end too
    finally:
        for sock in (client, accepted, listener):
            sock.close()
    ours, theirs = socket.socketpair()
    try:
        assert files.peer_process(ours) == os.getpid()
    finally:
        ours.close()
        theirs.close()
    assert files.works_in(os.getpid(), os.getcwd()) and not files.works_in(os.getpid(), str(tmp_path))
    with pytest.raises(files.NotProven, match="cannot be examined"):
        files.works_in(os.getpid(), str(tmp_path / "missing"))
