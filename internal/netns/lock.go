package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// lockDir holds one lock file per live Net (N.lock) and the subnet lock.
// /run is a tmpfs, emptied at boot like the namespaces themselves.
const lockDir = "/run/kintsu-netns"

const (
	subnetLockName = "subnet.lock"
	// lockWait bounds waiting for a lock held by someone else: the subnet
	// lock is held for a few commands, a stale name's lock by CleanupStale
	// for a few more. A live Net holds its name lock for good, so waiting
	// for it ends with an error.
	lockWait = 10 * time.Second
	lockPoll = 20 * time.Millisecond
)

var errLocked = errors.New("locked by a live process")

// tryLock takes an exclusive flock on path without waiting. The lock
// belongs to the returned open file and dies with it (or with the
// process). A file that was unlinked (and maybe re-created) between open
// and flock is retried, so two holders can never lock different inodes of
// the same path.
func tryLock(path string) (*os.File, error) {
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, errLocked
			}
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		var onDisk, held syscall.Stat_t
		if syscall.Stat(path, &onDisk) == nil && syscall.Fstat(int(f.Fd()), &held) == nil && onDisk.Ino == held.Ino && onDisk.Dev == held.Dev {
			return f, nil
		}
		f.Close() // removed by its previous holder: lock the current file
	}
}

// lock is tryLock, retried until lockWait has passed.
func lock(path string) (*os.File, error) {
	deadline := time.Now().Add(lockWait)
	for {
		f, err := tryLock(path)
		if !errors.Is(err, errLocked) || time.Now().After(deadline) {
			return f, err
		}
		time.Sleep(lockPoll) // polling a lock someone else holds
	}
}

// unlock removes the lock file, then releases the lock: whoever opens the
// path afterwards gets a new file, and tryLock's inode check makes anyone
// who opened the old one retry.
func unlock(f *os.File) {
	os.Remove(f.Name())
	f.Close()
}

func nameLockPath(name string) string { return filepath.Join(lockDir, name+".lock") }

// lockName claims name for a new Net, recording the owner's pid in the
// lock file for error messages.
func lockName(name string) (*os.File, error) {
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return nil, fmt.Errorf("netns: lock directory: %w", err)
	}
	path := nameLockPath(name)
	deadline := time.Now().Add(lockWait)
	for {
		f, err := tryLock(path)
		if !errors.Is(err, errLocked) {
			if err != nil {
				return nil, fmt.Errorf("netns: locking name %q: %w", name, err)
			}
			f.Truncate(0)
			f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
			return f, nil
		}
		// Held. By a live Net (its pid is in the file and alive): fail
		// now. Otherwise CleanupStale is removing a dead owner's leftovers,
		// which takes moments: wait for it.
		b, _ := os.ReadFile(path)
		owner := strings.TrimSpace(string(b))
		if pid, err := strconv.Atoi(owner); (err == nil && processExists(pid)) || time.Now().After(deadline) {
			return nil, fmt.Errorf("netns: name %q is in use by a live Net (owner pid %s)", name, owner)
		}
		time.Sleep(lockPoll) // polling a lock someone else holds
	}
}
