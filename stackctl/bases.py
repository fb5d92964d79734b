"""Base images: which ones the stack uses, and building local stand-ins from Debian packages."""

import hashlib
import re
import shlex
import shutil
from pathlib import Path

from invoke.exceptions import CommandTimedOut

from . import ROOT, Problem
from .compose import Target, docker_compose
from .engine import image_size_mb, inspect_image
from .envfile import read_env, set_values

APT_SOURCES = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BASES_DIR = ROOT / "bases"
HOST_INPUTS = BASES_DIR / "host"


def names(c):
    """Every image `inv bases` can build: the stack's bases, then the tool images."""
    return [*c.config.bases.images, *c.config.bases.tools]


def spec(c, name):
    """invoke.yaml's entry for a base or tool image: its official and local image names."""
    bases = c.config.bases
    return bases.images[name] if name in bases.images else bases.tools[name]


def select(c, requested):
    """The names to build: the stack's bases when none are requested; refuses unknown names."""
    known = names(c)
    unknown = [name for name in requested if name not in known]
    if unknown:
        raise Problem(f"unknown base {', '.join(unknown)}: choose from {', '.join(known)}")
    return list(requested) or list(c.config.bases.images)


def debian_mirrors(sources_text):
    """(main mirror, security mirror) for Debian named in apt sources text.

    Understands both one-line (`deb URI suite ...`) and deb822 (`URIs:`) formats.
    """
    uris = re.findall(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", sources_text, re.M)
    uris += [u for line in re.findall(r"^\s*URIs:\s*(.+)$", sources_text, re.M) for u in line.split()]
    debian = [u.rstrip("/") for u in uris if re.search(r"/debian(-security)?/?$", u)]
    main = next((u for u in debian if not u.endswith("-security")), None)
    security = next((u for u in debian if u.endswith("-security")), None)
    return main, security


def host_mirrors(c):
    """The mirrors to debootstrap from: invoke.yaml's, else the ones apt on this host uses."""
    text = "\n".join(p.read_text() for p in APT_SOURCES if p.is_file())
    main, security = debian_mirrors(text)
    main = c.config.bases.debian_mirror or main
    if not main:
        raise Problem(
            "no Debian mirror found in /etc/apt/sources.list*: set "
            "bases.debian_mirror in invoke.yaml (or INVOKE_BASES_DEBIAN_MIRROR)"
        )
    return main, security


def rootfs_key(suite, mirror, security):
    """Cache key of the root filesystem: it changes when its recipe or sources change."""
    recipe = (BASES_DIR / "build-rootfs.sh").read_bytes()
    return hashlib.sha256(recipe + f"{suite} {mirror} {security}".encode()).hexdigest()[:16]


def ensure_rootfs_image(c):
    """Import the trimmed Debian rootfs as an image, debootstrapping only when its recipe changed."""
    bases = c.config.bases
    mirror, security = host_mirrors(c)
    key = rootfs_key(bases.debian_suite, mirror, security)
    labels = ((inspect_image(c, bases.rootfs_image) or {}).get("Config") or {}).get("Labels") or {}
    if labels.get("org.localbase.rootfs") == key:
        return "cached"
    tarball = ROOT / bases.cache_dir / f"rootfs-{bases.debian_suite}-{key}.tar"
    if not tarball.is_file():
        print(f"bases: debootstrap {bases.debian_suite} from {mirror} (about half a minute)")
        script = shlex.join(
            ["bash", str(BASES_DIR / "build-rootfs.sh"), bases.debian_suite, mirror, str(tarball), security or ""]
        )
        result = c.run(script, warn=True, hide=True)
        if not result.ok:
            raise Problem(
                result.stderr.strip().splitlines()[-1]
                if result.stderr.strip()
                else "building the Debian root filesystem failed"
            )
        for stale in tarball.parent.glob("rootfs-*.tar"):
            if stale != tarball:
                stale.unlink()
    c.run(
        f"docker import -c {shlex.quote('LABEL org.localbase.rootfs=' + key)} "
        f"{shlex.quote(str(tarball))} {shlex.quote(bases.rootfs_image)}",
        hide=True,
    )
    return "imported"


def prepare_host_inputs():
    """Files the base builds take from this host: its CA bundle."""
    HOST_INPUTS.mkdir(exist_ok=True)
    if not HOST_CA_BUNDLE.is_file():
        raise Problem(f"{HOST_CA_BUNDLE} not found: install Debian's ca-certificates")
    shutil.copyfile(HOST_CA_BUNDLE, HOST_INPUTS / "ca-certificates.crt")
    # Node.js tarballs that earlier versions fetched on the host: no build reads them now,
    # but they would still be sent with every build context.
    shutil.rmtree(HOST_INPUTS / "node", ignore_errors=True)


def node_pins(c):
    """The node base's build variables (bases/compose.yaml): each package's version and the
    SHA-256 of its tarball, from invoke.yaml."""
    bases = c.config.bases
    return {
        f"BASES_{name.upper()}_{field.upper()}": str(bases[f"{name}_{field}"])
        for name in ("node", "npm", "corepack")
        for field in ("version", "sha256")
    }


DIGEST_MISMATCH = re.compile(r"sha256 mismatch for \S+: expected [0-9a-f]*, actual [0-9a-f]+")


RECIPE_LABEL = "org.localbase.recipe"


def recipe_digest(c, name):
    """What a local base is built from: its bases/NAME/ files, the debian base's (it is built
    on it), the rootfs recipe and, for node, the pinned versions. A local image labelled with another
    digest predates a change of its recipe (say, the postgres entrypoint learning *_FILE)."""
    digest = hashlib.sha256()
    for directory in sorted({BASES_DIR / "debian", BASES_DIR / name}):
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            digest.update(f"{path.relative_to(BASES_DIR)}\0".encode() + path.read_bytes() + b"\0")
    digest.update((BASES_DIR / "build-rootfs.sh").read_bytes())
    # The pinned Node.js, npm and corepack go into the node base alone: in every digest, a
    # build with other pins (say, the test of a wrong digest) relabelled, and so replaced, the
    # debian image every base is built on.
    if name == "node":
        digest.update(repr(sorted(node_pins(c).items())).encode())
    return digest.hexdigest()[:16]


def recipe_variable(name):
    """The bases/compose.yaml variable that carries a base's recipe digest into its label."""
    return f"{name.upper()}_RECIPE"


def out_of_date(c, name, image, image_inspect):
    """True when `image` is the local stand-in of base `name` (not an official image) and was
    built from another recipe than bases/ holds now."""
    if image != spec(c, name)["local"]:
        return False
    labels = ((image_inspect or {}).get("Config") or {}).get("Labels") or {}
    return labels.get(RECIPE_LABEL) != recipe_digest(c, name)


def digest_mismatch(output):
    """The one line in which a base build refused a download, without BuildKit's prefix."""
    found = DIGEST_MISMATCH.search(output)
    return found.group(0) if found else None


def build(c, selected):
    """Build `debian` (the rootfs trusting this host's CA bundle), then the selected local
    bases on top of it; returns {name: (image, size in MB)}."""
    bases = c.config.bases
    env = {f"{name.upper()}_LOCAL_IMAGE": spec(c, name)["local"] for name in selected}
    env.update(ROOTFS_IMAGE=bases.rootfs_image, DEBIAN_IMAGE=bases.debian_image, **node_pins(c))
    env.update({recipe_variable(name): recipe_digest(c, name) for name in ["debian", *selected]})
    target = Target(name="bases", project=bases.project_name, files=(ROOT / bases.compose_file,))
    for services in (["debian"], selected):
        result = docker_compose(
            c, target, "--progress plain build " + " ".join(services), env=env, warn=True, hide=True
        )
        if not result.ok:
            output = result.stdout + result.stderr
            print("\n".join(output.splitlines()[-30:]))
            mismatch = digest_mismatch(output)
            if mismatch:
                raise Problem(
                    f"{mismatch}; nothing was installed (the expected digests are "
                    "pinned in invoke.yaml: bases.*_sha256)"
                )
            last = next((line for line in reversed(output.splitlines()) if line.strip()), "no output")
            raise Problem(
                f"building base images {', '.join(services)} failed ({last.strip()[:200]}); see the build output above"
            )
    return {name: (spec(c, name)["local"], image_size_mb(c, spec(c, name)["local"])) for name in selected}


def configured_images(c, env_path):
    """{base name: (variable, image)} as the stack will use them: .env value, else the official image."""
    env = read_env(env_path)
    return {
        name: (spec["var"], env.get(spec["var"]) or spec["official"]) for name, spec in c.config.bases.images.items()
    }


def try_pull(c, image, timeout=120):
    """Pull an image; False when the registry cannot be reached (in time)."""
    try:
        return c.run(f"docker pull {shlex.quote(image)}", hide=True, warn=True, timeout=timeout).ok
    except CommandTimedOut:
        return False


def provide(c, selected):
    """Build the selected local bases from Debian packages; prints each one's size."""
    ensure_rootfs_image(c)
    prepare_host_inputs()
    built = build(c, selected)
    for image, size_mb in built.values():
        print(f"bases: {image:<40} {size_mb:7.1f} MB")
    return built


def ensure_for_stack(c, env_path):
    """Make every base image the stack uses available: present, pulled, or built locally.

    When an image cannot be pulled, builds the local stand-in and points the .env
    variable at it. Returns {variable: local image} for the overrides it wrote.
    """
    images = c.config.bases.images
    to_build, outdated = [], []
    for name, (_variable, image) in configured_images(c, env_path).items():
        found = inspect_image(c, image)
        if found and out_of_date(c, name, image, found):
            outdated.append(name)
        elif not found and (image == images[name]["local"] or not try_pull(c, image)):
            to_build.append(name)
    if outdated:
        stale = ", ".join(images[name]["local"] for name in outdated)
        print(f"setup: rebuilding {stale}: their recipes in bases/ changed since they were built")
        provide(c, outdated)
    if not to_build:
        return {}
    print(
        f"setup: cannot pull {', '.join(images[n]['official'] for n in to_build)}; "
        "building local base images from Debian packages"
    )
    provide(c, to_build)
    overrides = {images[name]["var"]: images[name]["local"] for name in to_build}
    set_values(env_path, overrides)
    return overrides


def tool_image(c, name):
    """The image to run tool `name` (invoke.yaml bases.tools: registry, dockerd) from: the
    official one when it is here or can be pulled, else the local stand-in, built when it is
    missing or was built from another recipe than bases/ holds now."""
    tools = c.config.bases.tools
    if name not in tools:
        raise Problem(f"unknown tool image {name}: choose from {', '.join(tools)}")
    official, local = tools[name]["official"], tools[name]["local"]
    if inspect_image(c, official) or try_pull(c, official):
        return official
    found = inspect_image(c, local)
    if not found or out_of_date(c, name, local, found):
        print(
            f"bases: rebuilding {local}: its recipe in bases/ changed since it was built"
            if found
            else f"bases: cannot pull {official}; building {local} from Debian packages"
        )
        provide(c, [name])
    return local
