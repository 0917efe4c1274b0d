// Command etcd-anchor runs bench/raft-core's workload on etcd-raft's RawNode
// (go.etcd.io/raft/v3, fetched as a module, never copied) and prints the same
// figures, the last line as JSON for bench/raft-core.ts to read.
//
// Workload: 5 voters, electionTick 10, heartbeatTick 1, PreVote and CheckQuorum on;
// a synchronous driver (after each input: while HasReady, store the state in a
// MemoryStorage, queue the messages, Advance; then deliver the queue in order).
// Heartbeat rounds tick every member once; election rounds make the followers
// forget the leader and the next follower campaign. A step is one Tick, Step,
// Campaign or ForgetLeader call. Allocation is runtime.MemStats.TotalAlloc over
// heartbeat rounds, divided by the messages delivered.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

const (
	members       = 5
	electionTick  = 10
	heartbeatTick = 1
	modulePath    = "go.etcd.io/raft/v3"
)

// discardLogger drops etcd-raft's informational logging without formatting it (the
// TypeScript core does not log), and still stops on Fatal and Panic.
type discardLogger struct{}

func (discardLogger) Debug(...interface{})                   {}
func (discardLogger) Debugf(string, ...interface{})          {}
func (discardLogger) Error(...interface{})                   {}
func (discardLogger) Errorf(string, ...interface{})          {}
func (discardLogger) Info(...interface{})                    {}
func (discardLogger) Infof(string, ...interface{})           {}
func (discardLogger) Warning(...interface{})                 {}
func (discardLogger) Warningf(string, ...interface{})        {}
func (discardLogger) Fatal(v ...interface{})                 { log.Fatal(v...) }
func (discardLogger) Fatalf(format string, v ...interface{}) { log.Fatalf(format, v...) }
func (discardLogger) Panic(v ...interface{})                 { log.Panic(v...) }
func (discardLogger) Panicf(format string, v ...interface{}) { log.Panicf(format, v...) }

type group struct {
	nodes     []*raft.RawNode
	storages  []*raft.MemoryStorage
	queue     []*pb.Message
	steps     int
	delivered int
	elections int
}

func newGroup() *group {
	g := &group{}
	voters := make([]uint64, members)
	for i := range voters {
		voters[i] = uint64(i + 1)
	}
	quiet := discardLogger{}
	for i := 0; i < members; i++ {
		st := raft.NewMemoryStorage()
		// Bootstrap as etcd does: a snapshot that carries only the voter set.
		if err := st.ApplySnapshot(&pb.Snapshot{Metadata: &pb.SnapshotMetadata{ConfState: &pb.ConfState{Voters: voters}}}); err != nil {
			log.Fatal(err)
		}
		n, err := raft.NewRawNode(&raft.Config{
			ID:              uint64(i + 1),
			ElectionTick:    electionTick,
			HeartbeatTick:   heartbeatTick,
			Storage:         st,
			MaxSizePerMsg:   1 << 20,
			MaxInflightMsgs: 256,
			PreVote:         true,
			CheckQuorum:     true,
			Logger:          quiet,
		})
		if err != nil {
			log.Fatal(err)
		}
		g.nodes = append(g.nodes, n)
		g.storages = append(g.storages, st)
	}
	return g
}

func (g *group) drain(i int) {
	n := g.nodes[i]
	for n.HasReady() {
		rd := n.Ready()
		if rd.HardState != nil && !raft.IsEmptyHardState(rd.HardState) {
			if err := g.storages[i].SetHardState(rd.HardState); err != nil {
				log.Fatal(err)
			}
		}
		if len(rd.Entries) > 0 {
			if err := g.storages[i].Append(rd.Entries); err != nil {
				log.Fatal(err)
			}
		}
		if rd.SoftState != nil && rd.SoftState.RaftState == raft.StateLeader {
			g.elections++
		}
		g.queue = append(g.queue, rd.Messages...)
		n.Advance(rd)
	}
}

func (g *group) deliverAll() {
	for k := 0; k < len(g.queue); k++ {
		m := g.queue[k]
		i := int(m.GetTo()) - 1
		if err := g.nodes[i].Step(m); err != nil {
			log.Fatal(err)
		}
		g.steps++
		g.delivered++
		g.drain(i)
	}
	g.queue = g.queue[:0]
}

func (g *group) tickAll() {
	for i, n := range g.nodes {
		n.Tick()
		g.steps++
		g.drain(i)
	}
	g.deliverAll()
}

func (g *group) elect(candidate, leader int) {
	for i, n := range g.nodes {
		if i == leader {
			continue
		}
		if err := n.ForgetLeader(); err != nil {
			log.Fatal(err)
		}
		g.steps++
		g.drain(i)
	}
	if err := g.nodes[candidate].Campaign(); err != nil {
		log.Fatal(err)
	}
	g.steps++
	g.drain(candidate)
	g.deliverAll()
}

func (g *group) leader() int {
	for i, n := range g.nodes {
		if n.BasicStatus().RaftState == raft.StateLeader {
			return i
		}
	}
	return -1
}

type figures struct {
	Module                  string  `json:"module"`
	HeartbeatStepsPerSec    float64 `json:"heartbeatStepsPerSec"`
	HeartbeatMessagesPerSec float64 `json:"heartbeatMessagesPerSec"`
	ElectionStepsPerSec     float64 `json:"electionStepsPerSec"`
	ElectionsPerSec         float64 `json:"electionsPerSec"`
	BytesPerMessage         float64 `json:"bytesPerMessage"`
	HeartbeatSteps          int     `json:"heartbeatSteps"`
	ElectionSteps           int     `json:"electionSteps"`
	Elections               int     `json:"elections"`
}

func moduleVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, d := range info.Deps {
			if d.Path == modulePath {
				return d.Path + " " + d.Version
			}
		}
	}
	return modulePath
}

func main() {
	repeats := flag.Int("repeats", 5, "timed runs of each phase; the best rate is kept")
	heartbeatRounds := flag.Int("heartbeat-rounds", 40000, "heartbeat rounds per timed run")
	electionRounds := flag.Int("election-rounds", 8000, "elections per timed run")
	warmupRounds := flag.Int("warmup-rounds", 5000, "heartbeat rounds before timing")
	allocRounds := flag.Int("alloc-rounds", 5000, "heartbeat rounds for the allocation figure")
	flag.Parse()

	g := newGroup()
	g.elect(0, -1)
	if g.leader() != 0 {
		log.Fatal("bootstrap election failed")
	}
	for i := 0; i < *warmupRounds; i++ {
		g.tickAll()
	}

	// Each timed phase runs -repeats times and keeps the best rate, as the TS bench does.
	f := figures{Module: moduleVersion()}
	for rep := 0; rep < *repeats; rep++ {
		steps0, delivered0 := g.steps, g.delivered
		t0 := time.Now()
		for i := 0; i < *heartbeatRounds; i++ {
			g.tickAll()
		}
		secs := time.Since(t0).Seconds()
		f.HeartbeatSteps += g.steps - steps0
		f.HeartbeatStepsPerSec = max(f.HeartbeatStepsPerSec, float64(g.steps-steps0)/secs)
		f.HeartbeatMessagesPerSec = max(f.HeartbeatMessagesPerSec, float64(g.delivered-delivered0)/secs)
	}
	if g.leader() != 0 || g.elections != 1 {
		log.Fatal("the heartbeat phase changed the leader")
	}

	leader := 0
	for rep := 0; rep < *repeats; rep++ {
		elections0, steps0 := g.elections, g.steps
		t0 := time.Now()
		for i := 0; i < *electionRounds; i++ {
			next := (leader + 1) % members
			g.elect(next, leader)
			leader = next
		}
		secs := time.Since(t0).Seconds()
		f.ElectionSteps += g.steps - steps0
		f.Elections += g.elections - elections0
		f.ElectionStepsPerSec = max(f.ElectionStepsPerSec, float64(g.steps-steps0)/secs)
		f.ElectionsPerSec = max(f.ElectionsPerSec, float64(g.elections-elections0)/secs)
	}
	if f.Elections != *repeats**electionRounds || g.leader() != leader {
		log.Fatalf("expected %d elections, saw %d", *repeats**electionRounds, f.Elections)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	delivered0 := g.delivered
	for i := 0; i < *allocRounds; i++ {
		g.tickAll()
	}
	runtime.ReadMemStats(&after)
	f.BytesPerMessage = float64(after.TotalAlloc-before.TotalAlloc) / float64(g.delivered-delivered0)

	fmt.Printf("etcd-raft (%s, %s): heartbeat %.0f steps/s, %.0f messages/s; elections %.0f steps/s, %.0f elections/s; %.0f bytes/message\n",
		f.Module, runtime.Version(), f.HeartbeatStepsPerSec, f.HeartbeatMessagesPerSec, f.ElectionStepsPerSec, f.ElectionsPerSec, f.BytesPerMessage)
	if err := json.NewEncoder(os.Stdout).Encode(f); err != nil {
		log.Fatal(err)
	}
}
