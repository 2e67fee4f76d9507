package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kintsu/kintsu/internal/launcher"
)

// A running `kintsu dev` takes orders for its nodes on a Unix socket in
// its directory (DIR/dev.sock), so a node restarted through it stays its
// child: its output goes to its kintsu.log, Ctrl-C stops it with the
// others, and it runs the same binary. `kintsu dev restart N` and
// `kintsu dev stop N` send them; the running dev cluster is found from
// --dir or the user's state directory (devfiles.go).

const devSocket = "dev.sock"

// devOrderTimeout bounds one order: a graceful stop (leaderships handed
// away) and a start.
const devOrderTimeout = 60 * time.Second

// serveDevOrders answers orders on DIR/dev.sock until ctx ends. One
// order per connection: "restart N" or "stop N"; the reply is one line,
// "ok ..." or "error ...".
func serveDevOrders(ctx context.Context, dir string, c *launcher.Cluster) (func(), error) {
	path := filepath.Join(dir, devSocket)
	_ = os.Remove(path) // a socket left by a dev that was killed
	ln, err := net.Listen("unix", path)
	if err != nil {
		return func() {}, err
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go answerDevOrder(conn, c)
		}
	}()
	return func() { ln.Close(); os.Remove(path) }, nil
}

func answerDevOrder(conn net.Conn, c *launcher.Cluster) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(devOrderTimeout))
	// One short line: "restart N".
	line, err := bufio.NewReader(io.LimitReader(conn, 64)).ReadString('\n')
	if err != nil {
		return
	}
	verb, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
	id, perr := strconv.ParseUint(arg, 10, 64)
	reply := ""
	switch {
	case perr != nil || id == 0 || int(id) > len(c.Nodes()):
		reply = fmt.Sprintf("error no node %q in this cluster", arg)
	case verb == "stop":
		reply = orderResult(fmt.Sprintf("node %d stopped", id), c.Stop(id, devStopTimeout))
	case verb == "restart":
		if c.Running(id) {
			if err := c.Stop(id, devStopTimeout); err != nil && !errors.Is(err, launcher.ErrForcedKill) {
				reply = orderResult("", err)
				break
			}
		}
		err := c.Restart(id)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), devReadyTimeout)
			err = c.WaitNodeReady(ctx, id)
			cancel()
		}
		reply = orderResult(fmt.Sprintf("node %d restarted and ready", id), err)
	default:
		reply = fmt.Sprintf("error unknown order %q (restart N, stop N)", verb)
	}
	fmt.Fprintln(conn, reply)
}

func orderResult(ok string, err error) string {
	if err != nil {
		return "error " + strings.ReplaceAll(err.Error(), "\n", " ")
	}
	return "ok " + ok
}

// runDevOrder is `kintsu dev restart|stop N [--dir DIR]`.
func runDevOrder(verb string, args []string) int {
	dir, rest := "", []string{}
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case (a == "--dir" || a == "-dir") && i+1 < len(args):
			dir, i = args[i+1], i+1
		case strings.HasPrefix(a, "--dir="):
			dir = strings.TrimPrefix(a, "--dir=")
		default:
			rest = append(rest, a)
		}
	}
	if len(rest) != 1 {
		fmt.Fprintf(os.Stderr, "usage: kintsu dev %s N [--dir DIR]\n", verb)
		return 2
	}
	if dir == "" {
		b, err := os.ReadFile(devDirPointer())
		if err != nil {
			fmt.Fprintln(os.Stderr, "kintsu dev: no kintsu dev cluster is running (or give --dir DIR)")
			return 1
		}
		dir = strings.TrimSpace(string(b))
	}
	conn, err := net.DialTimeout("unix", filepath.Join(dir, devSocket), 2*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsu dev: no kintsu dev is running in %s (%v)\n", dir, err)
		return 1
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(devOrderTimeout + 5*time.Second))
	fmt.Fprintf(conn, "%s %s\n", verb, rest[0])
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		fmt.Fprintf(os.Stderr, "kintsu dev: no answer: %v\n", err)
		return 1
	}
	status, msg, _ := strings.Cut(strings.TrimSpace(line), " ")
	if status != "ok" {
		fmt.Fprintf(os.Stderr, "kintsu dev: %s\n", msg)
		return 1
	}
	fmt.Println(msg)
	return 0
}
