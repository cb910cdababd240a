"""docker-compose.yml and the Dockerfile: what the app writes survives a new container."""

from pathlib import Path, PurePosixPath

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _mounts(service: dict) -> dict[PurePosixPath, str]:
    return {
        PurePosixPath(target): source
        for source, target in (v.split(":")[:2] for v in service.get("volumes", []))
    }


def test_every_directory_the_app_writes_is_on_a_named_volume():
    """Invoice PDFs and the readings archive (the only copy of a month once its partition
    is dropped) must not live in the container's own layer."""
    compose = _compose()
    for name in ("web", "worker", "beat"):
        service = compose["services"][name]
        env = service["environment"]
        mounts = _mounts(service)
        for variable in ("HEATUTILITY_MEDIA_ROOT", "HEATUTILITY_READINGS_ARCHIVE_DIR"):
            assert variable in env, f"{name}: {variable} is left at its default under /app/var"
            path = PurePosixPath(env[variable])
            assert any(path.is_relative_to(m) for m in mounts), f"{name}: {path} is on no volume"
            assert all(mounts[m] in compose["volumes"] for m in mounts if path.is_relative_to(m))


def test_the_image_creates_the_mount_points_for_its_user():
    """A named volume mounted where the image has no directory is root's: the app's user
    (USER heat) could not write a PDF or an archive file into it.  Docker copies the
    ownership of the image's directory into a new volume."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    run_lines = " ".join(dockerfile.split("\\\n"))
    targets = {t for s in _compose()["services"].values() for t in _mounts(s)}
    app_targets = {t for t in targets if str(t).startswith("/data/")}
    assert app_targets
    for target in app_targets:
        assert any(
            "mkdir -p" in line and f" {target}" in line and "chown heat" in line
            for line in run_lines.splitlines()
            if line.startswith("RUN")
        ), f"the Dockerfile does not create {target} for the user heat"


def test_gunicorn_is_published_on_the_hosts_loopback_only():
    """Production settings trust X-Forwarded-Proto (SECURE_PROXY_SSL_HEADER): published on
    every address, anyone reaching the port could claim https past the TLS proxy."""
    production = (ROOT / "heatutility" / "settings" / "production.py").read_text()
    assert 'SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")' in production
    for name, service in _compose()["services"].items():
        for port in service.get("ports", []):
            host = str(port).rsplit(":", 2)[0]
            assert host == "${HEATUTILITY_WEB_BIND:-127.0.0.1}", f"{name} publishes {port}"
