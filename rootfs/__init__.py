"""minipod.rootfs: images and the containers' root file systems.

    reference    image names as Docker spells them (docker.io/library/…)
    registry     the OCI distribution protocol (token and basic auth, TLS)
    pull         a pull: manifest, config, layers, verified by digest
    credentials  `minipod login` (auths in the Docker config format)
    archive      OCI layouts and `docker save` tarballs (`image load`)
    store        the content-addressed store: LIB/images (blobs, refs, unpacked layers)
    unpack       a layer into a directory, every path resolved inside it
                 (whiteouts become overlayfs whiteouts)
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
