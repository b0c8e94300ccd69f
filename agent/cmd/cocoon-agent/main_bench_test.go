package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cocoon-tee/cocoon/protocols/agentpb"
	"github.com/cocoon-tee/cocoon/tools/client"
)

// BenchmarkStartToFirstCheck measures exec of the agent binary until the
// first Health.Check is answered over its unix socket.
func BenchmarkStartToFirstCheck(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "cocoon-agent")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		addr := "unix://" + filepath.Join(dir, "a.sock")
		cmd := exec.Command(bin, "--decision-log", filepath.Join(dir, "d.log"))
		cmd.Env = append(os.Environ(), "KATA_AGENT_SERVER_ADDR="+addr, "KATA_AGENT_LOG_LEVEL=error")
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		for {
			c, err := client.Dial(ctx, addr)
			if err == nil {
				_, err = c.Health.Check(ctx, &agentpb.CheckRequest{})
				c.Close()
				if err == nil {
					break
				}
			}
			time.Sleep(100 * time.Microsecond)
		}
		b.StopTimer()
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		b.StartTimer()
	}
}
