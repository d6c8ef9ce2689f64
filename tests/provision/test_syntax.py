"""Fast checks of the Ansible code (no host is changed): syntax, ansible-lint, the wheelhouse hash."""

from __future__ import annotations

import subprocess

import pytest
from provisioning import ANSIBLE_DIR, ROOT


@pytest.mark.parametrize("inventory", ["inventories/local/hosts.yml", "inventories/example/hosts.yml"])
def test_playbook_syntax(ansible_bin, inventory):
    proc = subprocess.run([str(ansible_bin / "ansible-playbook"), "-i", inventory, "--syntax-check", "site.yml"],
                          cwd=ANSIBLE_DIR, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ansible_lint_production_profile(ansible_bin):
    proc = subprocess.run([str(ansible_bin / "ansible-lint"), "--nocolor"], cwd=ANSIBLE_DIR,
                          capture_output=True, text=True, env={"PATH": f"{ansible_bin}:/usr/bin:/bin",
                                                               "HOME": str(ROOT / ".venv" / "ansible")})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Profile 'production' was required, and it passed" in proc.stdout + proc.stderr


def test_example_inventory_resolves_every_host(ansible_bin):
    """The example inventory's hosts and groups, and the settings the roles derive from them."""
    proc = subprocess.run([str(ansible_bin / "ansible-inventory"), "-i", "inventories/example/hosts.yml",
                           "--graph"], cwd=ANSIBLE_DIR, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for name in ("@master:", "master1", "@workers:", "worker1", "worker2", "worker3"):
        assert name in proc.stdout


def test_every_role_variable_is_documented():
    """Each role's README names every variable its defaults define."""
    import yaml  # ansible-core brings PyYAML into its venv; the project venv has it too

    for role in sorted((ANSIBLE_DIR / "roles").iterdir()):
        defaults = yaml.safe_load((role / "defaults" / "main.yml").read_text()) or {}
        readme = (role / "README.md").read_text()
        missing = [name for name in defaults if f"`{name}`" not in readme]
        assert not missing, f"roles/{role.name}/README.md does not document {missing}"


def test_wheelhouse_hash_is_stable(ansible_bin):
    argv = [str(ansible_bin / "python"), str(ANSIBLE_DIR / "build_wheelhouse.py"), "--hash"]
    first = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    second = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    assert first == second and len(first.strip()) == 16
