// The anchor of bench/rollout.ts: client-go's Lease elector as a Deployment's pods would run
// it, with the defaults its docs recommend (LeaseDuration 15 s, RenewDeadline 10 s, RetryPeriod
// 2 s) and ReleaseOnCancel, the identity being the pod name. It serves its own view on
// GET /leader ({"isLeader", "term"}: term is the Lease's leaseTransitions when this process
// started leading), the same question the bench asks every raft-elector member. SIGTERM
// cancels the elector: it stops claiming at once, releases the Lease and exits.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

func main() {
	kubeconfig := flag.String("kubeconfig", "", "kubeconfig file of the API server")
	namespace := flag.String("namespace", "default", "namespace of the Lease")
	lease := flag.String("lease", "client-go-anchor", "name of the Lease")
	listen := flag.String("listen", "127.0.0.1:4040", "address of GET /leader")
	identity := flag.String("id", os.Getenv("POD_NAME"), "this candidate's identity (the pod name)")
	flag.Parse()
	if *identity == "" {
		log.Fatal("client-go-anchor: --id (or POD_NAME) is required")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		log.Fatalf("client-go-anchor: %v", err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)

	var leading atomic.Bool
	var term atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/leader", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"self": *identity, "isLeader": leading.Load(), "term": term.Load()})
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	go func() { log.Fatal(http.ListenAndServe(*listen, mux)) }()

	ctx, cancel := context.WithCancel(context.Background())
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		// The app stops acting as leader the moment it is told to stop, before the release.
		leading.Store(false)
		cancel()
	}()

	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: *lease, Namespace: *namespace},
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: *identity},
	}
	leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		ReleaseOnCancel: true,
		LeaseDuration:   15 * time.Second,
		RenewDeadline:   10 * time.Second,
		RetryPeriod:     2 * time.Second,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leaderCtx context.Context) {
				if l, err := client.CoordinationV1().Leases(*namespace).Get(leaderCtx, *lease, metav1.GetOptions{}); err == nil && l.Spec.LeaseTransitions != nil {
					term.Store(int64(*l.Spec.LeaseTransitions))
				}
				if leaderCtx.Err() == nil {
					leading.Store(true)
					log.Printf("client-go-anchor: %s leads (transitions %d)", *identity, term.Load())
				}
				<-leaderCtx.Done()
				leading.Store(false)
			},
			OnStoppedLeading: func() { leading.Store(false) },
		},
	})
	log.Printf("client-go-anchor: %s stopped", *identity)
}
