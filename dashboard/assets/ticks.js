/* The tick watchdog of dashboard/views/ticks.py.
 *
 * A live callback turns its tick off while it runs; Dash turns it back on when the answer comes,
 * but not when none comes (a restart, a dropped connection). A tick that has stayed off for the
 * same call (the same n_intervals) longer than the limit is turned back on, so the page goes on.
 */
window.dash_clientside = Object.assign({}, window.dash_clientside, {
    ticks: {
        watch: function (_watchdog, disabled, n, id, limitMs) {
            const noUpdate = window.dash_clientside.no_update;
            const off = (window.implantTicksOff = window.implantTicksOff || {});
            if (!disabled) {
                delete off[id];
                return noUpdate;
            }
            const now = Date.now();
            const seen = off[id];
            if (!seen || seen.n !== n) {
                off[id] = {n: n, at: now};  // off for a new call: start its clock
                return noUpdate;
            }
            if (now - seen.at < limitMs) {
                return noUpdate;
            }
            delete off[id];
            return false;
        },
    },
});
