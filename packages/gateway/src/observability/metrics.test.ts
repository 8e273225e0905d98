import { describe, expect, it } from 'vitest';
import { register as globalRegistry } from 'prom-client';
import { METRIC_LABEL_LIMITS, createGatewayMetrics } from './metrics.js';

/** The value of one sample line, e.g. `name{a="b"} 3`. */
function sample(body: string, series: string): number | undefined {
  const line = body.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('gateway metrics', () => {
  it('records every metric and renders the Prometheus text format', async () => {
    const metrics = createGatewayMetrics();
    metrics.recordCall('orders', 'orders__refund_order', 'ok', 0.004);
    metrics.recordCall('orders', 'orders__refund_order', 'ok', 0.02);
    metrics.recordCall('orders', 'orders__refund_order', 'RATE_LIMITED', 0.0005);
    metrics.recordAttempt('orders', 'ok');
    metrics.recordAttempt('orders', 'TIMEOUT');
    metrics.recordRetry('orders', 'TIMEOUT');
    metrics.recordFallback('orders', 'orders-ro');
    metrics.recordRateLimited('user:60/60000');
    metrics.setBreakerState('http://10.0.0.1:7101/mcp', 'open');
    metrics.setBreakerState('http://10.0.0.2:7101/mcp', 'half-open');
    metrics.setUpstreamHealthy('orders', 'http://10.0.0.1:7101/mcp', false);
    metrics.recordInbound('post', 200);
    metrics.recordInbound('POST', 200);
    metrics.recordInbound('GET', 404);

    const { contentType, body } = await metrics.render();
    expect(contentType).toMatch(/^text\/plain; version=0\.0\.4/);
    const call = 'server="orders",tool="orders__refund_order"';
    expect(sample(body, `keel_gateway_calls_total{${call},outcome="ok"}`)).toBe(2);
    expect(sample(body, `keel_gateway_calls_total{${call},outcome="RATE_LIMITED"}`)).toBe(1);
    expect(sample(body, `keel_gateway_call_duration_seconds_count{${call}}`)).toBe(3);
    expect(sample(body, `keel_gateway_call_duration_seconds_bucket{le="0.001",${call}}`)).toBe(1);
    expect(sample(body, `keel_gateway_call_duration_seconds_bucket{le="0.005",${call}}`)).toBe(2);
    expect(sample(body, `keel_gateway_call_duration_seconds_bucket{le="0.025",${call}}`)).toBe(3);
    expect(sample(body, 'keel_gateway_attempts_total{server="orders",outcome="TIMEOUT"}')).toBe(1);
    expect(sample(body, 'keel_gateway_retries_total{server="orders",reason="TIMEOUT"}')).toBe(1);
    expect(sample(body, 'keel_gateway_fallbacks_total{from="orders",to="orders-ro"}')).toBe(1);
    expect(sample(body, 'keel_gateway_rate_limited_total{rule="user:60/60000"}')).toBe(1);
    expect(sample(body, 'keel_gateway_breaker_state{replica="http://10.0.0.1:7101/mcp"}')).toBe(2);
    expect(sample(body, 'keel_gateway_breaker_state{replica="http://10.0.0.2:7101/mcp"}')).toBe(1);
    expect(
      sample(
        body,
        'keel_gateway_upstream_healthy{server="orders",replica="http://10.0.0.1:7101/mcp"}',
      ),
    ).toBe(0);
    expect(sample(body, 'keel_gateway_inbound_requests_total{method="POST",status="200"}')).toBe(2);
    expect(sample(body, 'keel_gateway_inbound_requests_total{method="GET",status="404"}')).toBe(1);
  });

  it('uses its own registry, so two instances never clash and the global one stays empty', async () => {
    const a = createGatewayMetrics();
    const b = createGatewayMetrics();
    a.recordInbound('GET', 200);
    expect((await b.render()).body).not.toContain('status="200"');
    expect(await globalRegistry.metrics()).not.toContain('keel_gateway');
  });

  it('reads upstream health from a tracked source at each scrape, dropping removed replicas', async () => {
    const metrics = createGatewayMetrics();
    let readings = [
      { serverId: 'orders', replica: 'http://a.test/mcp', healthy: true },
      { serverId: 'orders', replica: 'http://b.test/mcp', healthy: false },
    ];
    metrics.trackUpstreamHealth(() => readings);
    let body = (await metrics.render()).body;
    expect(
      sample(body, 'keel_gateway_upstream_healthy{server="orders",replica="http://a.test/mcp"}'),
    ).toBe(1);
    expect(
      sample(body, 'keel_gateway_upstream_healthy{server="orders",replica="http://b.test/mcp"}'),
    ).toBe(0);
    readings = [{ serverId: 'orders', replica: 'http://a.test/mcp', healthy: false }];
    body = (await metrics.render()).body;
    expect(
      sample(body, 'keel_gateway_upstream_healthy{server="orders",replica="http://a.test/mcp"}'),
    ).toBe(0);
    expect(body).not.toContain('http://b.test/mcp');
  });

  it('keeps label cardinality bounded whatever callers and upstreams send', async () => {
    const metrics = createGatewayMetrics();
    for (let i = 0; i < METRIC_LABEL_LIMITS.errorCodes + 50; i++) {
      metrics.recordAttempt('orders', `TOOL_CODE_${i}`);
    }
    metrics.recordAttempt('orders', 'not a code');
    metrics.recordAttempt('orders', 'UNAVAILABLE'); // built-in codes always keep their name
    for (let i = 0; i < METRIC_LABEL_LIMITS.servers + 10; i++)
      metrics.recordRetry(`s${i}`, 'TIMEOUT');
    metrics.recordInbound('BREW', 418);
    metrics.recordInbound('GET', 9_999);

    const body = (await metrics.render()).body;
    const attemptLines = body
      .split('\n')
      .filter((l) => l.startsWith('keel_gateway_attempts_total{'));
    expect(attemptLines).toHaveLength(METRIC_LABEL_LIMITS.errorCodes + 2);
    expect(sample(body, 'keel_gateway_attempts_total{server="orders",outcome="OTHER"}')).toBe(51);
    expect(sample(body, 'keel_gateway_attempts_total{server="orders",outcome="UNAVAILABLE"}')).toBe(
      1,
    );
    // `orders` took one of the server slots, so 11 of the 210 fold into `_other`.
    expect(sample(body, 'keel_gateway_retries_total{server="_other",reason="TIMEOUT"}')).toBe(11);
    expect(sample(body, 'keel_gateway_inbound_requests_total{method="OTHER",status="418"}')).toBe(
      1,
    );
    expect(sample(body, 'keel_gateway_inbound_requests_total{method="GET",status="other"}')).toBe(
      1,
    );
  });
});
