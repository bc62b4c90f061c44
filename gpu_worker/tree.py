"""The ComfyUI root as the installer (root) may touch it: every directory opened without
following symlinks, every write, rename and delete done through a directory descriptor.

The tree belongs to the ``comfyui`` service user, who may swap any directory in it for a
symlink at any moment. Checking a path and then using it by name leaves that window
open (a swap between the two carries root's write or delete out of the tree); here a
path is walked one component at a time with ``O_NOFOLLOW`` (``openat``), and what
follows uses the descriptor that walk returned, so there is no second lookup to race.
A descriptor may outlive a rename of its directory, but only to somewhere the service
user could already write: nothing lands where it couldn't put a file itself.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager

_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePath(Exception):
    """A path under the root goes through a symlink or a non-directory."""


class RootTree:
    """Directory descriptors under one root, opened once each; close() releases them."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        os.makedirs(root, exist_ok=True)
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the root itself is the caller's
        self._dirs: dict[str, int] = {"": self.root_fd}
        #: root's own 0700 folders (staging): their descriptors are all that is used
        self._private: set[str] = set()

    def close(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()

    def __enter__(self) -> RootTree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def parent(self, path: str, *, create: bool) -> tuple[int, str] | None:
        """The descriptor of ``path``'s directory and its last component; None when a
        directory on the way is missing and ``create`` is False."""
        *directories, name = path.split("/")
        fd, walked = self.root_fd, ""
        for part in directories:
            walked = f"{walked}/{part}" if walked else part
            if walked not in self._dirs:
                opened = self._open_directory(fd, part, walked, create)
                if opened is None:
                    return None
                self._dirs[walked] = opened
            fd = self._dirs[walked]
        return fd, name

    @staticmethod
    def _open_directory(parent: int, name: str, walked: str, create: bool) -> int | None:
        for attempt in (1, 2):
            try:
                return os.open(name, _DIRECTORY, dir_fd=parent)
            except FileNotFoundError:
                if not create:
                    return None
                try:
                    os.mkdir(name, 0o755, dir_fd=parent)
                except FileExistsError:
                    if attempt == 2:
                        raise
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    raise UnsafePath(f"{walked} is a symlink or not a directory") from None
                raise
        raise UnsafePath(f"{walked} keeps changing")

    def moved(self) -> list[str]:
        """The directories walked so far that are no longer where they were walked (moved,
        or swapped for a symlink or another directory): checked before anything is placed."""
        changed = []
        for walked, fd in self._dirs.items():
            if not walked or walked in self._private:
                continue  # the root is the caller's; a private folder is used by descriptor only
            parent, _, name = walked.rpartition("/")
            try:
                now = os.stat(name, dir_fd=self._dirs[parent], follow_symlinks=False)
            except FileNotFoundError:
                changed.append(walked)
                continue
            held = os.fstat(fd)
            if (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
                changed.append(walked)
        return sorted(changed)

    @staticmethod
    def kind(directory: int, name: str) -> str | None:
        """'file', 'symlink', 'directory', 'other', or None when absent (never followed)."""
        try:
            mode = os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(mode):
            return "symlink"
        if stat.S_ISREG(mode):
            return "file"
        return "directory" if stat.S_ISDIR(mode) else "other"

    @staticmethod
    @contextmanager
    def open_file(directory: int, name: str, *, create: bool = False) -> Iterator[int]:
        """A regular file's descriptor (never through a symlink); ``create`` makes a new
        one that must not exist yet."""
        flags = os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_WRONLY | os.O_CREAT | os.O_EXCL if create else os.O_RDONLY)
        fd = os.open(name, flags, 0o644, dir_fd=directory)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise UnsafePath(f"{name} is not a regular file")
            yield fd
        finally:
            os.close(fd)

    def make_private_directory(self, name: str) -> int:
        """A fresh directory ``name`` at the root, 0700 (only root inside), whatever the
        service user left there before (a symlink is removed, never followed)."""
        self.remove_tree(name)
        os.mkdir(name, 0o700, dir_fd=self.root_fd)
        fd = self._open_directory(self.root_fd, name, name, create=False)
        self._dirs[name] = fd
        self._private.add(name)
        return fd

    def remove_tree(self, name: str) -> None:
        """Remove ``name`` at the root: a symlink or file is unlinked, a directory removed
        through descriptors (shutil.rmtree with dir_fd resists symlink swaps)."""
        import shutil

        kind = self.kind(self.root_fd, name)
        if kind is None:
            return
        if kind == "directory":
            fd = self._dirs.pop(name, None)
            self._private.discard(name)
            if fd is not None:
                os.close(fd)
            shutil.rmtree(name, dir_fd=self.root_fd)
        else:
            os.unlink(name, dir_fd=self.root_fd)
