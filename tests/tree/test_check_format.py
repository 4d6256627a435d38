"""tools/check_format.sh: the project's C files are formatted as its .clang-format says, and the
checker fails, naming the file, on one that is not (in a small tree of its own)."""

import os
import shutil
import subprocess

import harness

CHECKER = os.path.join(harness.SOURCE_DIR, "tools", "check_format.sh")


def run(*args):
    p = subprocess.run(["sh", CHECKER] + list(args), capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout + p.stderr


def small_tree(text):
    root = harness.temp_dir()
    shutil.copy(os.path.join(harness.SOURCE_DIR, ".clang-format"), root)
    os.makedirs(os.path.join(root, "common"))
    with open(os.path.join(root, "common", "good.c"), "w") as f:
        f.write("int good(int a)\n{\n    return a + 1;\n}\n")
    with open(os.path.join(root, "common", "other.c"), "w") as f:
        f.write(text)
    os.makedirs(os.path.join(root, "build", "x"))
    with open(os.path.join(root, "build", "x", "generated.c"), "w") as f:
        f.write("int   ignored ( void ) { return 0 ; }\n")  # build trees are not checked
    return root


def test_the_project_is_formatted():
    rc, out = run()
    assert rc == 0, out
    assert "files formatted as .clang-format says" in out, out


def test_a_formatted_tree_passes():
    rc, out = run(small_tree("int other(void)\n{\n    return 2;\n}\n"))
    assert rc == 0, out
    assert "2 files formatted" in out, out


def test_a_misformatted_file_fails_and_is_named():
    root = small_tree("int other( void ){ return 2; }\n")
    rc, out = run(root)
    assert rc == 1, out
    assert "common/other.c: not formatted" in out, out
    assert "good.c" not in out, out
    rc, out = run("--fix", root)
    assert rc == 0, out
    rc, out = run(root)
    assert rc == 0, out


if __name__ == "__main__":
    harness.run_tests()
