import ai.alc.Alc;
import ai.alc.AlcException;
import ai.alc.Session;

import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Drives the JNI bindings: streaming generation, cancel mid-stream (listener and
 * another thread), two sessions from two threads, bad handles, then an
 * open/generate/close loop that checks the process RSS stays bounded.
 * Usage: java -Dalc.library=/abs/libalc_capi.so AlcTest MODEL.gguf [LOOPS]
 */
public class AlcTest {
    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
        System.out.println("ok: " + what);
    }

    static long rssKb() throws Exception {
        for (String l : Files.readAllLines(Paths.get("/proc/self/status"))) {
            if (l.startsWith("VmRSS:")) return Long.parseLong(l.replaceAll("[^0-9]", ""));
        }
        return -1;
    }

    public static void main(String[] args) throws Exception {
        String model = args[0];
        int loops = args.length > 1 ? Integer.parseInt(args[1]) : 8;
        System.out.println("alc " + Alc.version());
        String prompt = "The capital of France is";

        try (Alc alc = Alc.open(model, 2, 256)) {
            // Streaming.
            StringBuilder streamed = new StringBuilder();
            AtomicInteger pieces = new AtomicInteger();
            try (Session s = alc.newSession()) {
                String all = s.generate(prompt, 8, 0f, t -> {
                    streamed.append(t);
                    pieces.incrementAndGet();
                    return true;
                });
                System.out.println("generated: " + prompt + all);
                check(all.startsWith(" Paris"), "greedy completion starts with ' Paris'");
                check(all.equals(streamed.toString()), "listener saw the same text");
                check(pieces.get() >= 2, "several streamed pieces (" + pieces.get() + ")");
                check(s.lastStopReason() == Session.STOP_MAX_TOKENS, "stopped at max tokens");

                // Cancel from the listener.
                AtomicInteger n = new AtomicInteger();
                String cut = s.generate(prompt, 32, 0f, t -> n.incrementAndGet() < 3);
                check(s.lastStopReason() == Session.STOP_CANCELLED, "listener cancel -> STOP_CANCELLED");
                check(n.get() == 3, "no tokens after the listener said stop (" + n.get() + ")");
                check(all.startsWith(cut), "cancelled text is a prefix: '" + cut + "'");

                // Cancel from another thread mid-stream: the listener holds the first
                // token until the other thread has called cancel().
                java.util.concurrent.CountDownLatch first = new java.util.concurrent.CountDownLatch(1);
                java.util.concurrent.CountDownLatch cancelled = new java.util.concurrent.CountDownLatch(1);
                Thread canceller = new Thread(() -> {
                    try {
                        first.await();
                        s.cancel();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    } finally {
                        cancelled.countDown();
                    }
                });
                canceller.start();
                String story = s.generate("Write a long story about a dragon.", 0, 0f, 0x5eedL, true, t -> {
                    first.countDown();
                    try {
                        cancelled.await();
                    } catch (InterruptedException e) {
                        Thread.currentThread().interrupt();
                    }
                    return true;
                });
                canceller.join();
                check(s.lastStopReason() == Session.STOP_CANCELLED,
                        "cancel() from another thread (stop " + s.lastStopReason() + ", text '" + story + "')");

                // A listener's exception cancels and reaches the caller.
                try {
                    s.generate(prompt, 8, 0f, t -> { throw new IllegalStateException("boom"); });
                    check(false, "listener exception propagates");
                } catch (IllegalStateException e) {
                    check(e.getMessage().equals("boom"), "listener exception propagates");
                }
            }

            // Two sessions from two Java threads.
            AtomicReference<String> a = new AtomicReference<>(), b = new AtomicReference<>();
            AtomicReference<Throwable> err = new AtomicReference<>();
            Thread[] ts = new Thread[2];
            for (int i = 0; i < 2; i++) {
                AtomicReference<String> out = i == 0 ? a : b;
                ts[i] = new Thread(() -> {
                    try (Session s = alc.newSession()) {
                        out.set(s.generate(prompt, 6, 0f, null));
                    } catch (Throwable e) {
                        err.set(e);
                    }
                });
                ts[i].start();
            }
            for (Thread t : ts) t.join();
            check(err.get() == null, "two threads ran without error " + err.get());
            check(a.get().equals(b.get()) && a.get().startsWith(" Paris"), "two sessions agree: '" + a.get() + "'");

            // Busy: a second generate on a session that is generating.
            try (Session s = alc.newSession()) {
                AtomicReference<AlcException> busy = new AtomicReference<>();
                s.generate(prompt, 4, 0f, t -> {
                    try {
                        s.generate(prompt, 1, 0f, null);
                    } catch (AlcException e) {
                        busy.set(e);
                    }
                    return true;
                });
                check(busy.get() != null && busy.get().status == AlcException.BUSY, "concurrent generate -> BUSY");
            }

            // Bad input surfaces as AlcException, never a crash.
            try {
                Alc.open("/nonexistent/model.gguf", 0, 0);
                check(false, "missing file throws");
            } catch (AlcException e) {
                check(e.status == AlcException.NOT_FOUND, "missing file -> NOT_FOUND: " + e.getMessage());
            }
            try {
                Alc.openBuffer(new byte[] {'G', 'G', 'U', 'F', 3, 0}, 0, 0);
                check(false, "truncated buffer throws");
            } catch (AlcException e) {
                check(e.status == AlcException.BAD_MODEL, "truncated buffer -> BAD_MODEL: " + e.getMessage());
            }
            Session s = alc.newSession();
            s.close();
            s.close(); // idempotent on the Java side
            try {
                alc.embed(new String[] {"x"});
                check(false, "embed on a language model throws");
            } catch (AlcException e) {
                check(e.status == AlcException.INVALID_ARGUMENT, "embed on a language model -> INVALID_ARGUMENT");
            }
        }
        int[] live = Alc.liveHandles();
        check(live[0] == 0 && live[1] == 0 && live[2] == 0, "no live handles after close");

        // open / generate / close N times: RSS stays bounded.
        long first = 0, last = 0;
        for (int i = 0; i < loops; i++) {
            try (Alc alc = Alc.open(model, 2, 256); Session s = alc.newSession()) {
                String out = s.generate(prompt, 4, 0f, null);
                if (!out.startsWith(" Paris")) throw new AssertionError("loop " + i + ": " + out);
            }
            System.gc();
            long rss = rssKb();
            if (i == 0) first = rss;
            last = rss;
            System.out.println("loop " + i + ": VmRSS " + rss / 1024 + " MiB");
        }
        long grown = last - first;
        check(grown < 96 * 1024, "RSS grew " + grown / 1024 + " MiB over " + loops + " open/generate/close loops (bound 96 MiB)");
        System.out.println("ALL OK");
    }
}
