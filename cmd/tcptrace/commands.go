package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// command is one entry of tcptrace's command table: its help, and bind,
// which defines its flags on the command and returns what runs it.
type command struct {
	use, short, long, example string
	// takesRecording: the command's one argument is a recording file;
	// otherwise it takes none.
	takesRecording bool
	bind           func(cmd *cobra.Command) func(args []string) error
}

// traceCommand is the root: tracing needs no command word, as in
// `sudo tcptrace --pid 1234`.
var traceCommand = command{
	use: "tcptrace",
	long: `tcptrace shows what the Linux kernel does to TCP connections: every state
change, retransmission and reset, attributed to the process that owns the
socket, live, as text or JSON lines (docs/json.md). Without a command it
traces until Ctrl-C or --duration. The filters run in the kernel; every one
given must hold, and the values of one are alternatives.`,
	example: `  sudo tcptrace --pid 1234                 sockets of process 1234, accepted ones included
  sudo tcptrace --port 443 -o json         port 443 (local or remote), as JSON lines
  sudo tcptrace --lport 8080               the connections of the server on port 8080
  sudo tcptrace --rport 5432               the connections to port 5432 elsewhere
  sudo tcptrace -p 1234,5678 -6            two processes, IPv6 only
  sudo tcptrace --container 3f4e5d6c7b8a   the sockets of one container (docker, containerd, CRI-O, podman)
  sudo tcptrace --cgroup /system.slice/nginx.service   a systemd service's, or any cgroup's and those below it
  sudo tcptrace --netns /run/netns/blue    one network namespace (path or inode)
  sudo tcptrace --duration 30s > trace.txt
  sudo tcptrace --record incident.tcptrace.gz   trace and record, to replay anywhere later
  sudo tcptrace --lport 8080 --duration 5m --report report.html   and its HTML report at the end
  sudo tcptrace --metrics :9464 > /dev/null     Prometheus metrics at http://HOST:9464/metrics
  sudo tcptrace -o none --metrics :9464 --metrics-labels container,pod
                                           a node's daemon: metrics by container and pod, no events
  sudo tcptrace -o none --record node.tcptrace.gz --record-max-size 100M --record-keep 5
                                           record for good: node.tcptrace.gz.1 ... .5, each replayable
  sudo tcptrace -o none --otlp http://localhost:4318
                                           findings, summaries and metrics to an OpenTelemetry collector
  tcptrace help replay                     the help of one command`,
	bind: bindTrace,
}

var subcommands = []command{
	{
		use:   "features",
		short: "Show the kernel hooks and how each is attached",
		long: `tcptrace features shows what this kernel offers tcptrace: BTF, the BPF ring
buffer, the helpers tracing programs need, and every hook with the program
chosen for it. As root it loads and attaches every hook, then detaches them;
without root it tells what the kernel's BTF rules out and marks the rest
"not checked".`,
		example: `  sudo tcptrace features
  tcptrace features        without root: what the kernel's BTF alone tells`,
		bind: bindFeatures,
	},
	{
		use:   "sysctl [--pid PID | --netns NS] [-o text|json]",
		short: "The TCP sysctls of a network namespace, explained",
		long: `tcptrace sysctl shows the TCP sysctls that decide how long connections
linger in TIME_WAIT and FIN_WAIT2, how keepalives and retransmissions are
timed and when the kernel gives a connection up: their values in one network
namespace, each with what it does. Reading another namespace needs root.`,
		example: `  tcptrace sysctl                              tcptrace's own network namespace
  sudo tcptrace sysctl --pid 1234              the namespace of process 1234
  sudo tcptrace sysctl --netns /run/netns/blue -o json`,
		bind: bindSysctl,
	},
	{
		use:   "replay FILE",
		short: "Show a recording again (no root needed)",
		long: `tcptrace replay shows a recording (tcptrace --record FILE) again: the same
events, summaries and findings as the live run, text or JSON lines. It needs
no privileges, and runs on any system. Its filters work as tracing's do.`,
		example: `  tcptrace replay incident.tcptrace.gz
  tcptrace replay incident.tcptrace.gz --pid 1234 -o json
  tcptrace replay incident.tcptrace.gz --lport 8080
  tcptrace replay incident.tcptrace.gz --since 2026-11-21T10:00:00Z --until 2026-11-21T10:05:00Z`,
		takesRecording: true,
		bind:           bindReplay,
	},
	{
		use:   "report FILE -o report.html",
		short: "A recording as one HTML page: an overview, a timeline per socket",
		long: `tcptrace report makes one self-contained HTML page of a recording: an
overview of the run (sockets by state over time, TIME_WAIT sockets alive,
how and at what age TIME_WAIT ended, findings by kind), the list of sockets,
and each socket's zoomable timeline (states, TIME_WAIT, probes, retransmits,
resets) with every event and its findings in words, then the sysctls. The
page loads nothing from the network; open it in any browser, attach it to a
ticket. A live run writes the same page with --report FILE.`,
		example: `  tcptrace report incident.tcptrace.gz -o report.html
  tcptrace report incident.tcptrace.gz -o report.html --title "api-7 resets, 21 Nov"`,
		takesRecording: true,
		bind:           bindReport,
	},
}

// newCommandTree builds tcptrace's commands from the table, writing to
// stdout and stderr.
func newCommandTree(stdout, stderr io.Writer) *cobra.Command {
	root := newCommand(traceCommand)
	// Before the completion command, which takes its output when made.
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.Version = versionText()
	root.SetVersionTemplate("tcptrace {{.Version}}\n")
	// run says every error, once.
	root.SilenceErrors, root.SilenceUsage = true, true
	root.SetFlagErrorFunc(flagError)
	root.SetHelpCommand(newHelpCommand())
	root.SuggestionsMinimumDistance = 2
	for _, c := range subcommands {
		root.AddCommand(newCommand(c))
	}
	// cobra's `completion`, but refusing a shell it has no script for
	// instead of showing its help.
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Args = noArgs
			c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
		}
	}
	return root
}

func newCommand(c command) *cobra.Command {
	cmd := &cobra.Command{Use: c.use, Short: c.short, Long: c.long, Example: c.example,
		Args: noArgs, ValidArgsFunction: cobra.NoFileCompletions}
	if c.takesRecording {
		cmd.Args, cmd.ValidArgsFunction = oneRecording, nil // nil: the shell completes file names
	}
	cmd.Flags().SortFlags = false
	run := c.bind(cmd)
	cmd.RunE = func(_ *cobra.Command, args []string) error { return run(args) }
	return cmd
}

// displayName is how messages name a command: its words after "tcptrace",
// the root by what it does.
func displayName(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return "tracing"
	}
	return strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
}

// noArgs refuses arguments; to a command with subcommands an argument is a
// mistyped one of them.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	if cmd.HasAvailableSubCommands() {
		msg := fmt.Sprintf("%q is not a %s command", args[0], cmd.CommandPath())
		if similar := cmd.SuggestionsFor(args[0]); len(similar) > 0 {
			msg += "; did you mean " + similar[0] + "?"
		}
		return usageError{fmt.Sprintf("%s (see %s --help)", msg, cmd.CommandPath())}
	}
	return usageError{fmt.Sprintf("%s takes no arguments, got %q (see %s --help)", displayName(cmd), args[0], cmd.CommandPath())}
}

func oneRecording(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usageError{fmt.Sprintf("%s takes one recording file, got %d arguments (see %s --help)", displayName(cmd), len(args), cmd.CommandPath())}
	}
	return nil
}

// flagError turns a bad flag into one sentence. A flag of another command
// is named as such: `tcptrace features --duration 1s` is a mix-up, not a
// typo.
func flagError(cmd *cobra.Command, err error) error {
	// A flag's value says itself what is wrong with it.
	var invalid usageError
	if errors.As(err, &invalid) {
		return invalid
	}
	var unknown *pflag.NotExistError
	if errors.As(err, &unknown) {
		flag := "--" + unknown.GetSpecifiedName()
		if unknown.GetSpecifiedShortnames() != "" {
			flag = "-" + unknown.GetSpecifiedName()
		}
		if owners := flagOwners(cmd.Root(), flag); len(owners) > 0 {
			return usageError{fmt.Sprintf("%s is for %s, not for %s (see %s --help)", flag, joinAnd(owners), displayName(cmd), cmd.CommandPath())}
		}
	}
	return usageError{fmt.Sprintf("%v (see %s --help)", err, cmd.CommandPath())}
}

// flagOwners names the commands in the tree under c that have flag (as
// "--name" or "-x"), hidden ones left out.
func flagOwners(c *cobra.Command, flag string) []string {
	var f *pflag.Flag
	if name, ok := strings.CutPrefix(flag, "--"); ok {
		f = c.Flags().Lookup(name)
	} else {
		f = c.Flags().ShorthandLookup(strings.TrimPrefix(flag, "-"))
	}
	var owners []string
	if f != nil && !f.Hidden {
		owners = append(owners, displayName(c))
	}
	for _, sub := range c.Commands() {
		owners = append(owners, flagOwners(sub, flag)...)
	}
	return owners
}

// joinAnd lists words as "a, b and c".
func joinAnd(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " and " + words[len(words)-1]
}

// newHelpCommand is `tcptrace help [command]`; unlike cobra's own, it
// refuses a command that does not exist instead of showing the main help.
func newHelpCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "help [command]",
		Short:   "The help of tcptrace, or of one command",
		Example: "  tcptrace help replay\n  tcptrace help completion bash",
		ValidArgsFunction: func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			var names []cobra.Completion
			if parent, rest, err := cmd.Root().Find(args); err == nil && len(rest) == 0 {
				for _, sub := range parent.Commands() {
					if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
						names = append(names, cobra.CompletionWithDesc(sub.Name(), sub.Short))
					}
				}
			}
			return names, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := cmd.Root().Find(args)
			if err != nil || len(rest) > 0 {
				var names []string
				for _, sub := range cmd.Root().Commands() {
					if sub.IsAvailableCommand() {
						names = append(names, sub.Name())
					}
				}
				return usageError{fmt.Sprintf("no help for %q: the commands are %s (see tcptrace --help)", strings.Join(args, " "), joinAnd(names))}
			}
			target.InitDefaultHelpFlag() // listed in its flags, as in `target --help`
			return target.Help()
		},
	}
}
