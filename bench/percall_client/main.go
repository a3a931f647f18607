// percall_client: sequential CRI calls over one gRPC connection, as kubelet's
// client makes them, for bench/percall.py to read the daemon's CPU around.
//
//	percall_client SOCKET VERB ID N
//
// It makes 200 warm-up calls (20 of ExecSync), prints "warm", waits for a
// line on stdin (the caller reads the daemon's CPU), makes N calls and
// prints the mean wall time per call in microseconds. Each call carries the
// deadline kubelet gives it.
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

const (
	requestTimeout = 2 * time.Minute // kubelet's --runtime-request-timeout default
	execTimeout    = 10              // seconds, the exec probe's
)

// a call's context as kubelet makes it: with its deadline, or only cancelled after
func callContext(deadline time.Duration) (context.Context, context.CancelFunc) {
	if deadline > 0 {
		return context.WithTimeout(context.Background(), deadline)
	}
	return context.WithCancel(context.Background())
}

// warm-up calls, fewer for the verbs that start a process
func warmup(verb string) int {
	if verb == "ExecSync" {
		return 20
	}
	return 200
}

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: percall_client SOCKET VERB ID N")
		os.Exit(2)
	}
	sock, verb, id := os.Args[1], os.Args[2], os.Args[3]
	n, err := strconv.Atoi(os.Args[4])
	if err != nil || n <= 0 {
		fmt.Fprintln(os.Stderr, "percall_client: N must be a positive integer")
		os.Exit(2)
	}
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "percall_client:", err)
		os.Exit(1)
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	// kubelet's deadlines: its runtime-request-timeout (2 minutes) on the
	// status and list calls, that plus the command's timeout on ExecSync, and
	// none on the stats calls (they may take long; kubelet only cancels them).
	deadline := requestTimeout
	var call func(ctx context.Context) error
	switch verb {
	case "ContainerStatus":
		call = func(ctx context.Context) error {
			_, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
			return err
		}
	case "PodSandboxStatus":
		call = func(ctx context.Context) error {
			_, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id})
			return err
		}
	case "ListContainers":
		call = func(ctx context.Context) error {
			_, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
			return err
		}
	case "ListPodSandbox":
		call = func(ctx context.Context) error {
			_, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
			return err
		}
	case "ListContainerStats":
		deadline = 0
		call = func(ctx context.Context) error {
			_, err := rt.ListContainerStats(ctx, &runtimeapi.ListContainerStatsRequest{})
			return err
		}
	case "ListPodSandboxStats":
		deadline = 0
		call = func(ctx context.Context) error {
			_, err := rt.ListPodSandboxStats(ctx, &runtimeapi.ListPodSandboxStatsRequest{})
			return err
		}
	case "ExecSync":
		// kubelet's exec probe: a command that exits 0 at once, with a timeout
		deadline = requestTimeout + execTimeout*time.Second
		call = func(ctx context.Context) error {
			got, err := rt.ExecSync(ctx, &runtimeapi.ExecSyncRequest{ContainerId: id, Cmd: []string{"true"}, Timeout: execTimeout})
			if err == nil && got.ExitCode != 0 {
				err = fmt.Errorf("exit code %d", got.ExitCode)
			}
			return err
		}
	default:
		fmt.Fprintln(os.Stderr, "percall_client: unknown verb", verb)
		os.Exit(2)
	}
	run := func(count int) {
		for i := 0; i < count; i++ {
			ctx, cancel := callContext(deadline)
			err := call(ctx)
			cancel()
			if err != nil {
				fmt.Fprintln(os.Stderr, "percall_client:", verb, err)
				os.Exit(1)
			}
		}
	}
	run(warmup(verb))
	fmt.Println("warm")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		fmt.Fprintln(os.Stderr, "percall_client: stdin:", err)
		os.Exit(1)
	}
	began := time.Now()
	run(n)
	fmt.Println(time.Since(began).Microseconds() / int64(n))
}
