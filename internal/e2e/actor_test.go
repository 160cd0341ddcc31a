package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// actorEnv makes the test binary act as a TCP peer instead of running tests;
// the test starts it inside a scenario's network namespace so that server and
// client are separate processes with their own pids.
const actorEnv = "TCPTRACE_E2E_ACTOR"

// runActor is one end of a TCP connection driven by line commands on stdin.
// It starts by saying "started PID"; each command is answered with "ok",
// followed by a result where there is one, or "error: ...":
//
//	listen ADDR    listen on ADDR; result: the port
//	accept         accept one connection
//	connect ADDR   connect to ADDR; result: the local port
//	write N        send N bytes
//	read-eof       read until the peer closes
//	wait-readable  wait until data is queued, without reading it
//	linger0        set SO_LINGER {on, 0}: close() sends an RST
//	close          close the connection
//	exit           exit (also on end of stdin)
func runActor() int {
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, a ...any) {
		fmt.Fprintf(out, format+"\n", a...)
		out.Flush()
	}
	say("started %d", os.Getpid())
	var p peer
	defer p.closeAll()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd := strings.Fields(in.Text())
		if len(cmd) == 0 {
			continue
		}
		if cmd[0] == "exit" {
			return 0
		}
		result, err := p.run(cmd)
		if err != nil {
			say("error: %v", err)
			continue
		}
		say("ok%s", result)
	}
	return 0
}

// peer is the actor's listener and connection.
type peer struct {
	ln   net.Listener
	conn *net.TCPConn
}

func (p *peer) closeAll() {
	if p.ln != nil {
		p.ln.Close()
	}
	if p.conn != nil {
		p.conn.Close()
	}
}

func (p *peer) run(cmd []string) (string, error) {
	arg := func() (string, error) {
		if len(cmd) != 2 {
			return "", fmt.Errorf("%s takes one argument", cmd[0])
		}
		return cmd[1], nil
	}
	if cmd[0] != "listen" && cmd[0] != "connect" && cmd[0] != "accept" && p.conn == nil {
		return "", errors.New("no connection")
	}
	switch cmd[0] {
	case "listen":
		a, err := arg()
		if err != nil {
			return "", err
		}
		if p.ln, err = net.Listen("tcp", a); err != nil {
			return "", err
		}
		return fmt.Sprintf(" %d", p.ln.Addr().(*net.TCPAddr).Port), nil
	case "accept":
		if p.ln == nil {
			return "", errors.New("not listening")
		}
		c, err := p.ln.Accept()
		if err != nil {
			return "", err
		}
		p.conn = c.(*net.TCPConn)
		return "", nil
	case "connect":
		a, err := arg()
		if err != nil {
			return "", err
		}
		c, err := net.DialTimeout("tcp", a, 10*time.Second)
		if err != nil {
			return "", err
		}
		p.conn = c.(*net.TCPConn)
		return fmt.Sprintf(" %d", c.LocalAddr().(*net.TCPAddr).Port), nil
	case "write":
		a, err := arg()
		if err != nil {
			return "", err
		}
		n, err := strconv.Atoi(a)
		if err != nil {
			return "", err
		}
		_, err = p.conn.Write(make([]byte, n))
		return "", err
	case "read-eof":
		_, err := io.Copy(io.Discard, p.conn)
		return "", err
	case "wait-readable":
		return "", waitReadable(p.conn)
	case "linger0":
		return "", p.conn.SetLinger(0)
	case "close":
		return "", p.conn.Close()
	}
	return "", fmt.Errorf("unknown command %q", cmd[0])
}

func waitReadable(conn *net.TCPConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	buf := make([]byte, 1)
	var recvErr error
	err = raw.Read(func(fd uintptr) bool {
		_, _, recvErr = unix.Recvfrom(int(fd), buf, unix.MSG_PEEK)
		return !errors.Is(recvErr, syscall.EAGAIN)
	})
	if err != nil {
		return err
	}
	return recvErr
}
