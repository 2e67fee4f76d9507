package netns

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// killWait bounds the wait for killed processes to leave a namespace.
const killWait = 5 * time.Second

var probeNS = regexp.MustCompile(`^kintsu-probe-([0-9]+)-[0-9]+$`)

// CleanupStale removes the leftovers of earlier runs whose names start with
// prefix: every Net whose owner died without closing it (a crashed or
// killed test binary). Processes still running in its hosts are killed,
// then its namespaces and links are removed. A Net is recognised by its
// lock file in /run/kintsu-netns; one whose owner is alive — in this
// process or another — holds the lock and is left alone, so CleanupStale
// is safe to call while other runs are in progress. Namespaces left by an
// interrupted Supported check of a dead process are removed too.
func CleanupStale(prefix string) error {
	ip, err := ipTool()
	if err != nil {
		return err
	}
	var errs []error
	entries, err := os.ReadDir(lockDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("netns: reading %s: %w", lockDir, err)
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".lock")
		if !ok || !validName.MatchString(name) || !strings.HasPrefix(name, prefix) {
			continue
		}
		f, err := tryLock(nameLockPath(name))
		if errors.Is(err, errLocked) {
			continue // alive
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("netns: %q: %w", name, err))
			continue
		}
		// Not a pid: a Create of this name waits for us instead of
		// taking the lock for a live owner's.
		f.Truncate(0)
		f.WriteAt([]byte(fmt.Sprintf("cleanup by pid %d\n", os.Getpid())), 0)
		if err := removeName(ip, name); err != nil {
			f.Close() // keep the lock file: the next cleanup retries
			errs = append(errs, fmt.Errorf("netns: removing stale %q: %w", name, err))
			continue
		}
		unlock(f)
	}

	nss, err := listNamespaces(ip)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, ns := range nss {
		m := probeNS.FindStringSubmatch(ns)
		if m == nil {
			continue
		}
		if pid, _ := strconv.Atoi(m[1]); pid > 0 && processExists(pid) {
			continue
		}
		if _, err := run(nil, ip, "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// listNamespaces returns the names `ip netns list` shows.
func listNamespaces(ip string) ([]string, error) {
	out, err := run(nil, ip, "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			names = append(names, f[0]) // "name (id: 3)"
		}
	}
	return names, nil
}

// removeName removes everything of the Net called name: it kills the
// processes in its namespaces, deletes its root link (which takes its veth
// peer in the hub along) and then its namespaces (which take the bridge,
// the other veths and the nftables ruleset along). It tolerates a partly
// built or partly removed Net. The caller holds the name's lock.
func removeName(ip, name string) error {
	nsRe := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `-(hub|h[0-9]+)$`)
	all, err := listNamespaces(ip)
	if err != nil {
		return err
	}
	var nss []string
	for _, ns := range all {
		if nsRe.MatchString(ns) {
			nss = append(nss, ns)
		}
	}
	var errs []error
	if err := killInside(ip, nss); err != nil {
		errs = append(errs, err)
	}
	root := name + "-root"
	if _, err := net.InterfaceByName(root); err == nil {
		if _, err := run(nil, ip, "link", "del", "dev", root); err != nil && !alreadyGone(err) {
			errs = append(errs, err)
		}
	}
	for _, ns := range nss {
		if _, err := run(nil, ip, "netns", "del", ns); err != nil && !alreadyGone(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// alreadyGone reports whether ip failed because what it was to remove no
// longer exists: another cleanup, or the Net's owner closing late, removed
// it between our listing and our removal.
func alreadyGone(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "No such file or directory") || strings.Contains(msg, "Cannot find device")
}

// killInside SIGKILLs every process in the namespaces and waits, bounded,
// until they are gone: a namespace with a process in it outlives its name.
// A process that is a zombie no longer counts as inside.
func killInside(ip string, nss []string) error {
	deadline := time.Now().Add(killWait)
	for {
		var left []string
		for _, ns := range nss {
			out, err := run(nil, ip, "netns", "pids", ns)
			if err != nil {
				if alreadyGone(err) {
					continue
				}
				return err
			}
			for _, f := range strings.Fields(out) {
				pid, err := strconv.Atoi(f)
				if err != nil || pid == os.Getpid() {
					continue
				}
				syscall.Kill(pid, syscall.SIGKILL)
				left = append(left, ns+":"+f)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes still inside after SIGKILL and %v: %s", killWait, strings.Join(left, ", "))
		}
		time.Sleep(20 * time.Millisecond) // polling for the kernel to finish the kills
	}
}
