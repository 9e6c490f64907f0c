# -*- coding: utf-8 -*-
# Copyright: keel.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mail over SMTP: STARTTLS (the default), implicit TLS, or plain SMTP to a relay that needs no login; a password
is only ever sent over TLS, and the server's certificate and host name are verified unless asked otherwise."""

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from ansible_collections.keel.ops.plugins.module_utils._errors import ConfigError, KeelError

SECURITY = ("starttls", "tls", "none")


def check(config):
    if config.smtp_security not in SECURITY:
        raise ConfigError("smtp_security must be one of %s" % ", ".join(SECURITY))
    if not config.smtp_to or not config.smtp_from:
        raise ConfigError("email needs smtp_from and at least one address in smtp_to")
    if config.smtp_username and config.smtp_security == "none":
        raise ConfigError("smtp_username with smtp_security: none would send the password unencrypted; use "
                          "starttls or tls")
    if bool(config.smtp_username) != bool(config.smtp_password):
        raise ConfigError("smtp_username and smtp_password go together")


def message(config, subject, text):
    mail = EmailMessage()
    mail["Subject"], mail["From"], mail["To"] = subject, config.smtp_from, ", ".join(config.smtp_to)
    mail["Date"], mail["Message-ID"] = formatdate(localtime=False), make_msgid(domain="keel.ops")
    mail.set_content(text)
    return mail


def _context(config):
    if not config.validate_certs:
        return ssl._create_unverified_context()  # pylint: disable=protected-access  # asked for, per option
    return ssl.create_default_context(cafile=config.ca_cert)


def send(config, mail):
    """Deliver `mail`; returns the server's reply to the data. Raises KeelError with the server's words."""
    where = "%s:%d" % (config.smtp_host, config.smtp_port)
    try:
        if config.smtp_security == "tls":
            client = smtplib.SMTP_SSL(config.smtp_host, config.smtp_port, timeout=config.smtp_timeout,
                                      context=_context(config))
        else:
            client = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.smtp_timeout)
        try:
            client.ehlo()
            if config.smtp_security == "starttls":
                client.starttls(context=_context(config))
                client.ehlo()
            if config.smtp_username:
                client.login(config.smtp_username, config.smtp_password)
            refused = client.send_message(mail)
        finally:
            try:
                client.quit()
            except (smtplib.SMTPException, OSError):
                client.close()
    except smtplib.SMTPAuthenticationError as error:
        raise KeelError("the mail server %s refused the login of %s: %s"
                        % (where, config.smtp_username, _reply(error)))
    except smtplib.SMTPNotSupportedError as error:
        raise KeelError("the mail server %s does not offer %s" % (where, error))
    except smtplib.SMTPException as error:
        raise KeelError("the mail server %s did not take the message: %s" % (where, _reply(error)))
    except ssl.SSLCertVerificationError as error:
        raise KeelError("TLS with the mail server %s failed: certificate verify failed: %s (give the CA that signed "
                        "it in ca_cert)" % (where, error.verify_message))
    except ssl.SSLError as error:
        raise KeelError("TLS with the mail server %s failed: %s" % (where, error.reason or error))
    except OSError as error:
        raise KeelError("the mail server %s could not be reached: %s" % (where, error.strerror or error))
    if refused:
        raise KeelError("the mail server %s refused %s" % (where, ", ".join(sorted(refused))))
    return where


def _reply(error):
    text = getattr(error, "smtp_error", None)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return "%s %s" % (getattr(error, "smtp_code", ""), text or error)
