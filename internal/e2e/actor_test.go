package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

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
//	connect-from LOCAL ADDR  the same from a port bound first (SO_REUSEADDR)
//	linger2 SECS   set TCP_LINGER2: how long an orphaned FIN_WAIT2 lasts
//	send-segment FROM TO FLAGS SEQ ACK [LEN]  send one segment (FLAGS as
//	               "SYN" or "FIN,ACK", LEN bytes of data) from FROM to TO
//	               through a raw socket (IPv4), as a late or forged one arrives
//	seqs           the socket's rcv_nxt and snd_nxt, read in repair mode (the
//	               socket is ESTABLISHED or CLOSE, e.g. after its TIME_WAIT
//	               socket took over); result: "RCV_NXT SND_NXT"
//	write N        send N bytes
//	read-eof       read until the peer closes
//	wait-readable  wait until data is queued, without reading it
//	linger0        set SO_LINGER {on, 0}: close() sends an RST
//	keepalive IDLE INTVL CNT  SO_KEEPALIVE with TCP_KEEPIDLE/KEEPINTVL/KEEPCNT
//	               (0 0 0: SO_KEEPALIVE alone, the sysctls apply)
//	user-timeout MS   set TCP_USER_TIMEOUT
//	rcvbuf N       set SO_RCVBUF on the listener (accepted sockets inherit it)
//	fill           write until the peer's window is full (a write blocks)
//	shutdown-write send FIN, keep reading (shutdown(SHUT_WR))
//	shutdown-both  send FIN and stop receiving (shutdown(SHUT_RDWR))
//	close          close the connection
//	fd-listen PATH listen on a Unix socket at PATH, for fd-accept
//	send-fd PATH   pass the connection to the actor listening at PATH
//	               (SCM_RIGHTS) and close it here: it changes hands
//	fd-accept      take the connection another actor passes
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
	fdLn *net.UnixListener // fd-listen
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
	if cmd[0] == "send-segment" {
		if len(cmd) != 6 && len(cmd) != 7 {
			return "", errors.New("send-segment FROM TO FLAGS SEQ ACK [LEN]")
		}
		return "", sendSegment(cmd[1], cmd[2], cmd[3], cmd[4], cmd[5], append(cmd[6:], "0")[0])
	}
	switch cmd[0] {
	case "fd-listen":
		path, err := arg()
		if err != nil {
			return "", err
		}
		p.fdLn, err = net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		return "", err
	case "send-fd":
		path, err := arg()
		if err != nil {
			return "", err
		}
		return "", p.sendConn(path)
	case "fd-accept":
		if p.fdLn == nil {
			return "", errors.New("fd-accept needs fd-listen first")
		}
		return "", p.takeConn()
	}
	if cmd[0] == "connect-from" {
		if len(cmd) != 3 {
			return "", errors.New("connect-from LOCAL ADDR")
		}
		local, err := net.ResolveTCPAddr("tcp", cmd[1])
		if err != nil {
			return "", err
		}
		d := net.Dialer{LocalAddr: local, Timeout: 10 * time.Second, KeepAlive: -1, Control: reuseAddr}
		c, err := d.Dial("tcp", cmd[2])
		if err != nil {
			return "", err
		}
		p.conn = c.(*net.TCPConn)
		return fmt.Sprintf(" %d", c.LocalAddr().(*net.TCPAddr).Port), nil
	}
	if cmd[0] == "timewaits" {
		n, err := arg()
		if err != nil {
			return "", err
		}
		count, err := strconv.Atoi(n)
		if err != nil {
			return "", err
		}
		return "", timewaits(count)
	}
	if cmd[0] == "rcvbuf" {
		if len(cmd) != 2 || p.ln == nil {
			return "", errors.New("rcvbuf N, after listen")
		}
		n, err := strconv.Atoi(cmd[1])
		if err != nil {
			return "", err
		}
		raw, err := p.ln.(*net.TCPListener).SyscallConn()
		if err != nil {
			return "", err
		}
		var serr error
		if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n) }); err != nil {
			return "", err
		}
		return "", serr
	}
	if cmd[0] != "listen" && cmd[0] != "connect" && cmd[0] != "accept" && cmd[0] != "close-listener" && p.conn == nil {
		return "", errors.New("no connection")
	}
	switch cmd[0] {
	case "listen":
		a, err := arg()
		if err != nil {
			return "", err
		}
		// KeepAlive -1: Go turns keepalive on by default; tests choose.
		lc := net.ListenConfig{KeepAlive: -1}
		if p.ln, err = lc.Listen(context.Background(), "tcp", a); err != nil {
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
		d := net.Dialer{Timeout: 10 * time.Second, KeepAlive: -1}
		c, err := d.Dial("tcp", a)
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
	case "linger2":
		a, err := arg()
		if err != nil {
			return "", err
		}
		secs, err := strconv.Atoi(a)
		if err != nil {
			return "", err
		}
		return "", setsockoptInt(p.conn, unix.IPPROTO_TCP, unix.TCP_LINGER2, secs)
	case "keepalive":
		if len(cmd) != 4 {
			return "", errors.New("keepalive IDLE INTVL CNT")
		}
		if err := p.conn.SetKeepAlive(true); err != nil {
			return "", err
		}
		for i, opt := range []int{unix.TCP_KEEPIDLE, unix.TCP_KEEPINTVL, unix.TCP_KEEPCNT} {
			v, err := strconv.Atoi(cmd[1+i])
			if err != nil {
				return "", err
			}
			if v > 0 {
				if err := setsockoptInt(p.conn, unix.IPPROTO_TCP, opt, v); err != nil {
					return "", err
				}
			}
		}
		return "", nil
	case "user-timeout":
		a, err := arg()
		if err != nil {
			return "", err
		}
		ms, err := strconv.Atoi(a)
		if err != nil {
			return "", err
		}
		return "", setsockoptInt(p.conn, unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, ms)
	case "fill":
		buf := make([]byte, 64<<10)
		total := 0
		for {
			p.conn.SetWriteDeadline(time.Now().Add(300 * time.Millisecond))
			n, err := p.conn.Write(buf)
			total += n
			if err != nil {
				p.conn.SetWriteDeadline(time.Time{})
				if errors.Is(err, os.ErrDeadlineExceeded) {
					return fmt.Sprintf(" %d", total), nil
				}
				return "", err
			}
		}
	case "shutdown-write":
		return "", p.conn.CloseWrite()
	case "shutdown-both":
		if err := p.conn.CloseWrite(); err != nil {
			return "", err
		}
		return "", p.conn.CloseRead()
	case "seqs":
		return repairSeqs(p.conn)
	case "tcp-info":
		return tcpInfo(p.conn)
	case "close":
		return "", p.conn.Close()
	case "close-listener":
		if p.ln == nil {
			return "", errors.New("not listening")
		}
		return "", p.ln.Close()
	}
	return "", fmt.Errorf("unknown command %q", cmd[0])
}

// sendConn passes the connection's descriptor to the actor listening at
// path, and closes its own.
func (p *peer) sendConn(path string) error {
	if p.conn == nil {
		return errors.New("no connection")
	}
	uc, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return err
	}
	defer uc.Close()
	f, err := p.conn.File()
	if err != nil {
		return err
	}
	defer f.Close()
	if _, _, err := uc.WriteMsgUnix([]byte{0}, unix.UnixRights(int(f.Fd())), nil); err != nil {
		return err
	}
	err = p.conn.Close()
	p.conn = nil
	return err
}

// takeConn adopts the connection another actor passes through fdLn.
func (p *peer) takeConn() error {
	uc, err := p.fdLn.AcceptUnix()
	if err != nil {
		return err
	}
	defer uc.Close()
	buf, oob := make([]byte, 1), make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
	if err != nil {
		return err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return fmt.Errorf("no descriptor passed: %w", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return fmt.Errorf("no descriptor passed: %w", err)
	}
	f := os.NewFile(uintptr(fds[0]), "passed")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return err
	}
	p.conn = c.(*net.TCPConn)
	return nil
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

func reuseAddr(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

func setsockoptInt(conn *net.TCPConn, level, opt, value int) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, value) }); err != nil {
		return err
	}
	return serr
}

// sendSegment sends one TCP segment without options from one IPv4 endpoint
// to another; the kernel adds the IP header.
func sendSegment(from, to, flags, seqArg, ackArg, lenArg string) error {
	src, err := netip.ParseAddrPort(from)
	if err != nil {
		return err
	}
	dst, err := netip.ParseAddrPort(to)
	if err != nil {
		return err
	}
	if !src.Addr().Is4() || !dst.Addr().Is4() {
		return errors.New("send-segment: IPv4 only")
	}
	var bits byte
	for name := range strings.SplitSeq(flags, ",") {
		bit := strings.Index("FIN SYN RST PSH ACK", name)
		if bit < 0 || bit%4 != 0 {
			return fmt.Errorf("send-segment: flag %q", name)
		}
		bits |= 1 << (bit / 4)
	}
	seq, err := strconv.ParseUint(seqArg, 10, 32)
	if err != nil {
		return err
	}
	ack, err := strconv.ParseUint(ackArg, 10, 32)
	if err != nil {
		return err
	}
	n, err := strconv.ParseUint(lenArg, 10, 16)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_TCP)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: src.Addr().As4()}); err != nil {
		return err
	}
	seg := make([]byte, 20+n)
	binary.BigEndian.PutUint16(seg[0:], src.Port())
	binary.BigEndian.PutUint16(seg[2:], dst.Port())
	binary.BigEndian.PutUint32(seg[4:], uint32(seq))
	binary.BigEndian.PutUint32(seg[8:], uint32(ack))
	seg[12] = 5 << 4 // data offset: 5 words
	seg[13] = bits
	binary.BigEndian.PutUint16(seg[14:], 65535)
	binary.BigEndian.PutUint16(seg[16:], tcpChecksum(src.Addr().As4(), dst.Addr().As4(), seg))
	return unix.Sendto(fd, seg, 0, &unix.SockaddrInet4{Addr: dst.Addr().As4()})
}

// TCP_REPAIR_QUEUE values (include/uapi/linux/tcp.h), not in x/sys/unix.
const (
	tcpRecvQueue = 1
	tcpSendQueue = 2
)

// repairSeqs reads rcv_nxt and snd_nxt (write_seq) through TCP_REPAIR and
// leaves repair mode without the window probe TCP_REPAIR_OFF would send.
func repairSeqs(conn *net.TCPConn) (string, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return "", err
	}
	var rcvNxt, sndNxt int
	var serr error
	err = raw.Control(func(fd uintptr) {
		f := int(fd)
		steps := []func() error{
			func() error { return unix.SetsockoptInt(f, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_ON) },
			func() error { return unix.SetsockoptInt(f, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpRecvQueue) },
			func() (err error) { rcvNxt, err = unix.GetsockoptInt(f, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ); return },
			func() error { return unix.SetsockoptInt(f, unix.IPPROTO_TCP, unix.TCP_REPAIR_QUEUE, tcpSendQueue) },
			func() (err error) { sndNxt, err = unix.GetsockoptInt(f, unix.IPPROTO_TCP, unix.TCP_QUEUE_SEQ); return },
			func() error {
				return unix.SetsockoptInt(f, unix.IPPROTO_TCP, unix.TCP_REPAIR, unix.TCP_REPAIR_OFF_NO_WP)
			},
		}
		for _, step := range steps {
			if serr = step(); serr != nil {
				return
			}
		}
	})
	if err == nil {
		err = serr
	}
	return fmt.Sprintf(" %d %d", uint32(rcvNxt), uint32(sndNxt)), err
}

// tcpChecksum is the RFC 793 checksum over the IPv4 pseudo-header and seg.
func tcpChecksum(src, dst [4]byte, seg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	add([]byte{0, unix.IPPROTO_TCP, byte(len(seg) >> 8), byte(len(seg))})
	add(seg)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// timewaits leaves n TIME_WAIT sockets on 127.0.0.1: n connections to a
// listener of its own, each closed by the client first, cleanly (shutdown,
// the server's close, then the client's), so that the client's socket
// enters TIME_WAIT from FIN_WAIT2 while still open.
func timewaits(n int) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	d := net.Dialer{KeepAlive: -1}
	for range n {
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			return err
		}
		s, err := ln.Accept()
		if err != nil {
			c.Close()
			return err
		}
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, s)
		s.Close()
		io.Copy(io.Discard, c)
		c.Close()
	}
	return nil
}

// tcpInfo is getsockopt(TCP_INFO) of the connection, as JSON (tcp_info's
// field names, and the window scales, which golang.org/x/sys leaves out).
func tcpInfo(c *net.TCPConn) (string, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return "", err
	}
	var info *unix.TCPInfo
	var infoErr error
	if err := raw.Control(func(fd uintptr) { info, infoErr = unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO) }); err != nil {
		return "", err
	}
	if infoErr != nil {
		return "", infoErr
	}
	// tcpi_snd_wscale:4, tcpi_rcv_wscale:4 follow tcpi_options.
	wscales := (*[8]byte)(unsafe.Pointer(info))[6]
	b, err := json.Marshal(map[string]any{"snd_mss": info.Snd_mss, "advmss": info.Advmss, "options": info.Options,
		"snd_wscale": wscales & 0xf, "rcv_wscale": wscales >> 4, "bytes_acked": info.Bytes_acked,
		"bytes_received": info.Bytes_received, "segs_out": info.Segs_out, "segs_in": info.Segs_in,
		"min_rtt": info.Min_rtt, "rtt": info.Rtt, "total_retrans": info.Total_retrans})
	return " " + string(b), err
}
