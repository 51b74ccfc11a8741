"""minipod.rootfs: images and the containers' root file systems.

    reference    image names as Docker spells them (docker.io/library/…)
    transport    HTTP to a registry: TLS (certs.d), kept-alive connections,
                 insecure and loopback rules, the errors users see
    registry     the OCI distribution protocol (token and basic auth, manifests, blobs)
    blobreader   a blob download that resumes a dropped connection (Range)
    pull         a pull: manifest, config, layers, verified by digest
    credentials  `minipod login` (auths in the Docker config format)
    archive      OCI layouts and `docker save` tarballs (`image load`)
    archivefiles an archive read as named files: a directory, or a tar read once
    blobs        the store's blobs and unpacked layers: LIB/images/{blobs,layers}
    store        the image store: names (refs.json), images, garbage collection
    layerstream  a layer blob decompressed (gzip, zstd) and hashed (its diff_id)
    layertree    a layer's root as an fd: member path checks, O_NOFOLLOW walks
    unpack       a layer into a directory, every path resolved inside it
                 (whiteouts become overlayfs whiteouts)
    unpackchild  the same unpack in a child process, fed as the blob downloads
    fdpath       paths opened beneath a root by fd (openat2 RESOLVE_BENEATH, the
                 O_NOFOLLOW walk, the container's own view of the image's symlinks)
    mounts       a container's root: overlayfs of the layers and an upper dir,
                 binds made from checked file descriptors, /dev, /proc, pivot_root

Rules that bite: a layer is hostile (`..`, absolute paths, symlinks that
leave, device nodes: unpack refuses or contains each); a layer is renamed
into LIB/images/layers only once it is complete, so a crash leaves no half
layer in use; the overlay's options are one page at most (lowerdir lists
the top layer first); every mount target is opened beneath the new root
by an fd walk, never followed as a path string.

Check by hand: `minipod images`, `ls LIB/images/layers/sha256/`, and a running
container's root: `nsenter -t PID -m cat /proc/mounts` (overlay on /).
"""
