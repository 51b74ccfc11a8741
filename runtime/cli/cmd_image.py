"""`minipod images`, `minipod image import|load|ls|rm|inspect`: the local store.

Images live in a content-addressed store (/var/lib/minipod/images): blobs by
sha256, each layer unpacked once, shared by every image and container that
uses it. Registry pulls come later; for now images come from files.
"""
from __future__ import annotations

from minipod.runtime.cli.cmdutil import CommandError, print_table, require_root


def register(sub) -> None:
    i = sub.add_parser("images", help="list images in the local store")
    i.set_defaults(func=run, action="ls")
    r = sub.add_parser("rmi", help="remove images (like `docker rmi`)")
    r.add_argument("names", nargs="+", metavar="IMAGE")
    r.set_defaults(func=run, action="rm")
    p = sub.add_parser("image", help="import, load, list, remove, inspect images")
    s = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = s.add_parser("import", help="a root file system (directory or tar) as a 1-layer image",
                       description="Like `podman import`: DIR or TAR (plain or gzip) becomes "
                                   "the image NAME[:TAG].")
    imp.add_argument("source", metavar="DIR|TAR")
    imp.add_argument("name", metavar="NAME[:TAG]")
    imp.add_argument("--cmd", help="the image's Cmd, as a JSON list or a shell string")
    imp.add_argument("--entrypoint", help="the image's Entrypoint, as a JSON list")
    imp.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    imp.add_argument("--workdir")
    load = s.add_parser("load", help="an OCI image layout or a `docker save` tarball")
    load.add_argument("path", metavar="PATH")
    s.add_parser("ls", help="list images")
    rm = s.add_parser("rm", help="remove images (layers used by others stay)")
    rm.add_argument("names", nargs="+", metavar="IMAGE")
    pr = s.add_parser("prune", help="delete blobs and layers no image uses; -a: also every "
                                    "image no pod uses")
    pr.add_argument("-a", "--all", action="store_true")
    ins = s.add_parser("inspect", help="an image's config and layers as JSON")
    ins.add_argument("name", metavar="IMAGE")
    p.set_defaults(func=run)


def _cmd(value: str | None) -> list[str] | None:
    if value is None:
        return None
    if value.lstrip().startswith("["):
        import json
        try:
            return json.loads(value)
        except ValueError as e:
            raise CommandError(f"--cmd/--entrypoint: not a JSON list: {e}")
    return ["/bin/sh", "-c", value]


def run(args, paths) -> int:
    import json
    from pathlib import Path

    from minipod.rootfs import archive, reference
    from minipod.rootfs.store import ImageNotFound, ImageStore
    store = ImageStore(paths.images)
    try:
        if args.action == "import":
            require_root("image import")
            config = {k: v for k, v in {
                "Cmd": _cmd(args.cmd), "Entrypoint": _cmd(args.entrypoint),
                "Env": args.env or None, "WorkingDir": args.workdir}.items() if v}
            image = archive.import_rootfs(store, Path(args.source), args.name, config)
            print(f"imported {image.reference} (IMAGE ID {image.id})")
        elif args.action == "load":
            require_root("image load")
            for image in archive.load(store, Path(args.path)):
                print(f"Loaded image: {image.reference}")
        elif args.action == "rm":
            require_root("image rm")
            for name in args.names:
                _refuse_if_used(paths, store.get(name))
                store.remove(name)
                print(f"Untagged: {reference.parse(name)}")
        elif args.action == "prune":
            require_root("image prune")
            before = _disk_usage(paths.images)
            if args.all:
                for image in store.list():
                    try:
                        _refuse_if_used(paths, image)
                    except CommandError:
                        continue
                    store.remove(image.reference)
                    print(f"Untagged: {image.reference}")
            store.gc()
            print(f"Total reclaimed space: {_size(max(0, before - _disk_usage(paths.images)))}")
        elif args.action == "inspect":
            image = store.get(args.name)
            print(json.dumps({"Reference": image.reference, "Digest": image.digest,
                              "Created": image.created, "Size": image.size,
                              "Config": image.config,
                              "Layers": [str(p) for p in image.layer_dirs]}, indent=2))
        else:
            rows = []
            for image in store.list():
                ref = reference.parse(image.reference)
                repo = f"{ref.registry}/{ref.repository}"
                rows.append([repo, ref.tag or "<none>", image.id,
                             _ago(image.created), _size(image.size)])
            print_table(["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], rows)
    except ImageNotFound as e:
        raise CommandError(str(e))
    except ValueError as e:
        raise CommandError(str(e))
    except OSError as e:
        raise CommandError(f"{e.strerror or e}: {e.filename or ''}".rstrip(": "))
    return 0


def _refuse_if_used(paths, image) -> None:
    """Like `docker rmi`: an image a pod uses stays (its layers are in use)."""
    from minipod.runtime import namespaces, state
    records, _ = state.read_records(paths.pods)
    users = [namespaces.display(r.namespace, r.name) for r in records
             if any(c.image_id == image.digest for c in r.all_containers())]
    if users:
        raise CommandError(f"image {image.reference} is used by pod(s) {', '.join(users)}; "
                           f"delete them first")


def _disk_usage(root) -> int:
    import os
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                pass
    return total


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{n} B"
        n /= 1000
    return str(n)


def _ago(created: str | None) -> str:
    if not created:
        return "<unknown>"
    from minipod.runtime.api.podstatus import age
    created = created.split(".")[0].rstrip("Z") + "Z"
    try:
        return age(created) + " ago"
    except ValueError:
        return created
